"""Server-sent events framing (pure)."""

from __future__ import annotations

from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()

KEEPALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"


def data(payload: Any) -> bytes:
    return b"data: " + _encoder.encode(payload) + b"\n\n"


def event(name: str, payload: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encoder.encode(payload) + b"\n\n"
