"""Ollama's `keep_alive`, read as what it asks of the fleet (pure).

Ollama takes seconds (a number) or a Go duration ("5m", "1h30m", "300ms"); a negative value
keeps the model loaded for good and zero unloads it when the answer is done. Cortex has no
idle timers — a model stays loaded until the scheduler needs its room — so a positive
duration asks for nothing more than what already happens. "For good" is a pin when an
operator asks for it and otherwise what already happens (clients such as Zed send -1 with
every request); "now" is an unload, an operator's action (`residency.before` decides).
"""

from __future__ import annotations

import re
from enum import Enum

from cortex_gateway.errors import ApiError


class Residency(Enum):
    AS_SCHEDULED = "as scheduled"  # the default, or a positive duration
    PIN = "pin"  # keep it loaded for good (a pin, asked with an admin key)
    UNLOAD = "unload"  # unload it once the answer is done


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def seconds_of(value: str | float) -> float:
    """A keep_alive value in seconds; raises ValueError for one Ollama would not take."""
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-")
    try:
        return sign * float(text)  # a bare number: seconds
    except ValueError:
        pass
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(value)
    return sign * sum(float(number) * _UNITS[unit] for number, unit in parts)


def residency(value: str | float | None) -> Residency:
    if value is None:
        return Residency.AS_SCHEDULED
    try:
        seconds = seconds_of(value)
    except ValueError:
        raise ApiError.invalid(
            f"keep_alive must be a number of seconds or a duration like 5m, not {value!r}",
            param="keep_alive",
        ) from None
    if seconds < 0:
        return Residency.PIN
    return Residency.UNLOAD if seconds == 0 else Residency.AS_SCHEDULED
