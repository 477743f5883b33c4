"""API keys (pure): which key a request carries and what it may do. Keys are compared in
constant time and never logged."""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

from cortex_gateway.errors import ApiError
from cortex_wire.outcomes import Code

# The dashboard's page holds no data (its data route needs a key, which the page sends
# from the key typed into it): a browser can open it with auth on.
PUBLIC_PATHS = frozenset({"/", "/health", "/dashboard"})


def presented_key(headers: Mapping[str, str]) -> str:
    """The key a request carries: `Authorization: Bearer KEY`, else `x-api-key`, else an
    `Authorization` value without a scheme (some clients send the key bare)."""
    authorization = headers.get("authorization", "").strip()
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    return headers.get("x-api-key", "").strip() or authorization


def _known(key: str, keys: Iterable[str]) -> bool:
    return bool(key) and any(hmac.compare_digest(key.encode(), k.encode()) for k in keys)


def check_access(
    path: str,
    key: str,
    *,
    require_auth: bool,
    api_keys: Iterable[str],
    admin_keys: Iterable[str],
) -> None:
    """Raise ApiError(401/403) unless a request with `key` may use `path`."""
    admin_keys = list(admin_keys)
    if path in PUBLIC_PATHS:
        return
    if path.startswith("/admin/"):
        require_admin(key, api_keys, admin_keys)
        return
    if require_auth and not _known(key, [*api_keys, *admin_keys]):
        message = "an API key is required" if not key else "the API key is not valid"
        raise ApiError.of(Code.INVALID_API_KEY, message)


def require_admin(
    key: str, api_keys: Iterable[str], admin_keys: Iterable[str], what: str = "admin operations"
) -> None:
    """Raise ApiError(401/403) unless `key` is an admin key; `what` names the operation."""
    admin_keys = list(admin_keys)
    if not admin_keys:
        raise ApiError.of(
            Code.ADMIN_DISABLED, f"{what}: admin operations are disabled (no admin_keys)"
        )
    if not _known(key, admin_keys):
        # A client key is known but not enough (403); no key or a wrong one is 401.
        code = Code.ADMIN_KEY_REQUIRED if _known(key, api_keys) else Code.INVALID_API_KEY
        raise ApiError.of(code, f"{what}: that needs an admin key")
