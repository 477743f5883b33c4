"""Ollama's keep_alive values read as what they ask of a model's residency."""

import pytest

from cortex_core.config import GatewaySettings
from cortex_gateway.errors import ApiError
from cortex_gateway.keep_alive import Residency, residency, seconds_of
from cortex_gateway.residency import granted


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(300, 300.0), (3.5, 3.5), ("5m", 300.0), ("1h30m", 5400.0), ("300ms", 0.3),
     ("1.5h", 5400.0), ("-1", -1.0), ("-1m", -60.0), ("0", 0.0), ("0s", 0.0), ("10", 10.0)],
)  # fmt: skip
def test_durations_as_ollama_writes_them(value: str | float, seconds: float) -> None:
    assert seconds_of(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "forever", "5x", "m5", "5m garbage", "1h-5m"])
def test_what_ollama_would_not_take_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        seconds_of(value)
    with pytest.raises(ApiError) as refused:
        residency(value)
    assert (refused.value.status, refused.value.param) == (400, "keep_alive")


def test_negative_pins_zero_unloads_and_anything_else_is_the_schedulers_call() -> None:
    assert residency(-1) is residency("-5m") is Residency.PIN
    assert residency(0) is residency("0s") is Residency.UNLOAD
    assert residency(None) is residency("5m") is residency(1) is Residency.AS_SCHEDULED


def test_a_pin_is_granted_to_an_admin_key_and_is_as_scheduled_for_anyone_else() -> None:
    """Clients (Zed) send keep_alive -1 with every request: without an admin key it is no
    refusal but what happens anyway. An unload still needs one, and says why."""
    keyed = GatewaySettings(api_keys=["usr"], admin_keys=["adm"])
    assert granted(Residency.PIN, "adm", keyed) is Residency.PIN
    for key, settings in (("usr", keyed), ("", keyed), ("", GatewaySettings())):
        assert granted(Residency.PIN, key, settings) is Residency.AS_SCHEDULED
        with pytest.raises(ApiError) as refused:
            granted(Residency.UNLOAD, key, settings)
        assert refused.value.status in (401, 403) and "keep_alive 0 unloads it" in str(
            refused.value.message
        )
    assert granted(Residency.UNLOAD, "adm", keyed) is Residency.UNLOAD
    assert granted(Residency.AS_SCHEDULED, "", keyed) is Residency.AS_SCHEDULED
