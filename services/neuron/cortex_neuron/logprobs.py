"""Log probabilities of tokens under the model's own distribution (pure).

What the API reports as `logprob` is log softmax of the raw logits at one position: the
model's distribution before any sampler stage (penalties, biases, temperature, top-k), as
the OpenAI API documents it. The engine asks for these only for requests that want them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from cortex_wire.messages import TokenLogprob, TopLogprob

# (log probability of the token, [(token, log probability)] of the most likely, best first)
Scores = tuple[float, list[tuple[int, float]]]


def scores_at(logits: npt.NDArray[np.float32], token: int, top: int) -> Scores:
    """`token`'s log probability and the `top` most likely tokens' (ties: lower id first),
    from one position's logits, in float64 so small probabilities keep their digits."""
    values = logits.astype(np.float64)
    peak = float(values.max())
    norm = peak + math.log(float(np.exp(values - peak).sum()))
    top = min(top, len(values))
    best: list[int] = []
    if top > 0:
        candidates = np.argpartition(-values, top - 1)[:top]
        best = sorted((int(i) for i in candidates), key=lambda i: (-values[i], i))
    return float(values[token]) - norm, [(i, float(values[i]) - norm) for i in best]


def token_logprob(
    piece: Callable[[int], bytes], token: int, logprob: float | None,
    top: Sequence[tuple[int, float]] = (),
) -> TokenLogprob:  # fmt: skip
    """A token as the wire reports it: its text (a special token's own text), bytes and
    log probability, with its alternatives."""
    data = piece(token)
    return TokenLogprob(
        token=data.decode(errors="replace"),
        logprob=logprob,
        bytes=list(data),
        top=[_top(piece(t), lp) for t, lp in top],
    )


def _top(data: bytes, logprob: float) -> TopLogprob:
    return TopLogprob(token=data.decode(errors="replace"), logprob=logprob, bytes=list(data))
