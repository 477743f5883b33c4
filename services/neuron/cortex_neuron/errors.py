"""The one exception the engine and its backends raise; it carries its wire form."""

from __future__ import annotations

from cortex_wire.messages import WireError
from cortex_wire.outcomes import Code


class EngineError(Exception):
    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.wire = WireError(code=code, message=message)
