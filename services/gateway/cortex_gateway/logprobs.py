"""Token log probabilities as each OpenAI API writes them (pure).

The neuron scores tokens under the model's own distribution (`cortex_wire.TokenLogprob`);
chat completions and the Responses API list them as objects with `top_logprobs`, the
legacy completions API as parallel arrays with character offsets.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from typing import Any

from cortex_gateway.errors import ApiError
from cortex_wire.messages import MAX_TOP_LOGPROBS, TokenLogprob


def check_top(name: str, value: int | None) -> None:
    """How many alternatives per token a request may ask for (the neuron's own limit)."""
    if value is not None and not 0 <= value <= MAX_TOP_LOGPROBS:
        raise ApiError.invalid(
            f"{name} must be between 0 and {MAX_TOP_LOGPROBS}, got {value}", param=name
        )


def token_entries(logprobs: Sequence[TokenLogprob]) -> list[dict[str, Any]]:
    """Chat completions' `logprobs.content` (and the Responses API's `logprobs`)."""
    return [
        {
            "token": entry.token,
            "logprob": entry.logprob,
            "bytes": entry.bytes,
            "top_logprobs": [
                {"token": top.token, "logprob": top.logprob, "bytes": top.bytes}
                for top in entry.top
            ],
        }
        for entry in logprobs
    ]


class TextOffsets:
    """Where each token's text starts in the text the tokens spell, in characters, from
    `start`: their bytes decoded as one UTF-8 stream (a character split over tokens
    counts once, at the token that completes it)."""

    def __init__(self, start: int = 0) -> None:
        self.at = start
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def of(self, logprobs: Sequence[TokenLogprob]) -> list[int]:
        offsets = []
        for entry in logprobs:
            offsets.append(self.at)
            self.at += len(self._decoder.decode(bytes(entry.bytes)))
        return offsets


def completion_logprobs(
    logprobs: Sequence[TokenLogprob], offsets: TextOffsets | int
) -> dict[str, Any]:
    """The legacy completions API's `logprobs`: tokens, their log probabilities, the most
    likely alternatives (with the chosen token, which the API always lists) and where each
    token's text starts (`offsets`, or counting from that many characters)."""
    counter = offsets if isinstance(offsets, TextOffsets) else TextOffsets(offsets)
    return {
        "tokens": [entry.token for entry in logprobs],
        "token_logprobs": [entry.logprob for entry in logprobs],
        "top_logprobs": [_alternatives(entry) for entry in logprobs],
        "text_offset": counter.of(logprobs),
    }


def _alternatives(entry: TokenLogprob) -> dict[str, float] | None:
    if entry.logprob is None:  # the prompt's first token: nothing predicted it
        return None
    best = {top.token: top.logprob for top in entry.top}
    best.setdefault(entry.token, entry.logprob)
    return best
