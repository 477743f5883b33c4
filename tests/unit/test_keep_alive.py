"""Ollama's keep_alive values read as what they ask of a model's residency."""

import pytest

from cortex_gateway.errors import ApiError
from cortex_gateway.keep_alive import Residency, residency, seconds_of


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
