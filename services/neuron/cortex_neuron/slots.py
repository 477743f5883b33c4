"""Continuous-batching decisions (pure): which slot a new request takes, and which tokens
of which sequences go into the next decode step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cortex_neuron.backend import Row


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass(frozen=True, slots=True)
class FreeSlot:
    seq: int
    cached: Sequence[int]  # the tokens this slot's sequence still holds
    last_used: float


def pick_slot(free: Sequence[FreeSlot], prompt: Sequence[int]) -> tuple[int, int]:
    """(seq, reused): the free slot holding the longest prefix of `prompt`, the least
    recently used on a tie (so cached prompts live longest). At least the prompt's last
    token is always decoded again: its logits give the first generated token."""
    best = max(free, key=lambda slot: (common_prefix_length(slot.cached, prompt), -slot.last_used))
    reused = min(common_prefix_length(best.cached, prompt), max(len(prompt) - 1, 0))
    return best.seq, reused


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    tokens: Sequence[int]  # still to decode: the prompt's rest, or the last sampled token
    start: int  # position of tokens[0]


def plan_step(pending: Sequence[Pending], budget: int) -> list[Row]:
    """Rows for one decode step of at most `budget` tokens. Sequences already generating
    (one token each) go first, so a long prompt never stalls them; prompts fill what is
    left, in order, a chunk at a time. A row that carries its sequence's last pending token
    asks for logits."""
    order = sorted(pending, key=lambda p: len(p.tokens) > 1)
    rows: list[Row] = []
    used = 0
    for item in order:
        room = budget - used
        if room <= 0:
            break
        take = item.tokens[:room]
        if not take:
            continue
        finished = len(take) == len(item.tokens)
        rows.append(
            Row(
                seq=item.seq,
                tokens=take,
                start=item.start,
                output=used + len(take) - 1 if finished else -1,
            )
        )
        used += len(take)
    return rows
