"""Token log probabilities as each OpenAI API writes them (pure).

The neuron scores tokens under the model's own distribution (`cortex_wire.TokenLogprob`);
chat completions and the Responses API list them as objects with `top_logprobs`, the
legacy completions API as parallel arrays with character offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cortex_gateway.errors import ApiError
from cortex_wire.messages import TokenLogprob

# The most alternatives per token a request may ask for (chat, responses: OpenAI's limit).
MAX_TOP = 20
# The legacy completions API's own limit on `logprobs`.
MAX_COMPLETION_TOP = 5


def check_top(name: str, value: int | None, high: int) -> None:
    if value is not None and not 0 <= value <= high:
        raise ApiError.invalid(f"{name} must be between 0 and {high}, got {value}", param=name)


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


def completion_logprobs(logprobs: Sequence[TokenLogprob], offset: int) -> dict[str, Any]:
    """The legacy completions API's `logprobs`: tokens, their log probabilities, the most
    likely alternatives (with the chosen token, which the API always lists) and where each
    token's text starts, counting from `offset` characters."""
    offsets = []
    for entry in logprobs:
        offsets.append(offset)
        offset += len(entry.token)
    return {
        "tokens": [entry.token for entry in logprobs],
        "token_logprobs": [entry.logprob for entry in logprobs],
        "top_logprobs": [_alternatives(entry) for entry in logprobs],
        "text_offset": offsets,
    }


def _alternatives(entry: TokenLogprob) -> dict[str, float] | None:
    if entry.logprob is None:  # the prompt's first token: nothing predicted it
        return None
    best = {top.token: top.logprob for top in entry.top}
    best.setdefault(entry.token, entry.logprob)
    return best
