"""Requests that arrive together start together (pure).

Eight clients that send at once reach the neuron within a few milliseconds, and it hands
them to the engine one by one (each rendered and tokenized first). An idle engine used to
start a step with the first alone; the other seven then waited for that step, and their
rendering ran beside it on the cores llama.cpp was using, slowing both. So a request that
reaches an idle engine while more are already on their way in (received by the neuron,
not yet handed over) is held until they are, and the burst starts in one step.
"""

from __future__ import annotations

# The longest a held request waits for the ones behind it: a steady stream of arrivals
# must not keep the first from starting.
HOLD_LIMIT_S = 0.05


def hold_for_more(*, idle: bool, more_coming: bool, held: int, slots: int, waited_s: float) -> bool:
    """Whether the requests held for an engine (`held`, the newest among them) wait for
    the ones behind them: only at an idle engine (a busy one takes newcomers between steps
    anyway), only while more are on their way, while the held ones leave a slot free, and
    for at most HOLD_LIMIT_S since the first was held."""
    return idle and more_coming and held < slots and waited_s < HOLD_LIMIT_S
