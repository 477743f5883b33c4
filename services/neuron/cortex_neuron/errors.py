"""The one exception the engine and its backends raise; it carries its wire form."""

from __future__ import annotations

from collections.abc import Iterable

from cortex_wire.messages import WireError
from cortex_wire.outcomes import Code


class EngineError(Exception):
    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.wire = WireError(code=code, message=message)


def check_vocabulary(tokens: Iterable[int], n_vocab: int, what: str) -> None:
    """Token ids a request names (`what` names them) must be the model's: 0..n_vocab-1."""
    outside = next((t for t in tokens if not 0 <= t < n_vocab), None)
    if outside is not None:
        raise EngineError(
            Code.INVALID_REQUEST,
            f"{what} names token {outside}, outside this model's vocabulary of {n_vocab} tokens",
        )
