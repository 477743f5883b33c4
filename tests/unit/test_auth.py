import pytest

from cortex_gateway.auth import check_access, presented_key
from cortex_gateway.errors import ApiError


def access(path: str, key: str, require: bool = True, admin=("adm",)) -> int:
    try:
        check_access(path, key, require_auth=require, api_keys=["usr"], admin_keys=admin)
    except ApiError as error:
        return error.status
    return 200


@pytest.mark.parametrize(
    ("path", "key", "require", "status"),
    [
        ("/health", "", True, 200),
        ("/v1/models", "", True, 401),
        ("/v1/models", "usr", True, 200),
        ("/v1/models", "adm", True, 200),
        ("/v1/models", "", False, 200),
        ("/admin/status", "", False, 401),
        ("/admin/status", "usr", False, 403),
        ("/admin/status", "adm", False, 200),
        ("/dashboard", "", True, 200),  # the page; what it shows needs a key
        ("/dashboard/data", "", True, 401),
        ("/dashboard/data", "usr", True, 200),
    ],
)
def test_access_table(path: str, key: str, require: bool, status: int) -> None:
    assert access(path, key, require) == status


def test_admin_is_off_without_admin_keys() -> None:
    assert access("/admin/status", "anything", admin=()) == 403


def test_key_comes_from_bearer_or_x_api_key() -> None:
    assert presented_key({"authorization": "Bearer abc"}) == "abc"
    assert presented_key({"x-api-key": "xyz"}) == "xyz"
    assert presented_key({}) == ""
