"""JSON on the wire, written and read by msgspec (readable with `nats sub`)."""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

import msgspec

from cortex_wire.messages import ControlCommand, Frame

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


def encode(message: Any) -> bytes:
    return _encoder.encode(message)


@cache
def _decoder(kind: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(kind)


def decode(data: bytes, kind: type[T]) -> T:
    """Decode `data` as `kind`; raises msgspec.DecodeError / ValidationError on bad input."""
    result: T = _decoder(kind).decode(data)  # type: ignore[arg-type]
    return result


def decode_frame(data: bytes) -> Frame:
    frame: Frame = _decoder(Frame).decode(data)
    return frame


def decode_control(data: bytes) -> ControlCommand:
    command: ControlCommand = _decoder(ControlCommand).decode(data)
    return command
