"""Continuous-batching decisions (pure): which slot a new request takes, whether it copies
its prompt's prefix from another slot's cache (or waits for another slot to finish
prefilling it), and which tokens of which sequences go into the next decode step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cortex_neuron.backend import Row
from cortex_neuron.step_cost import Line


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


# A prompt continues a slot's cache when at least this share of it is already there.
CONTINUES = 0.5


def pick_slot(free: Sequence[FreeSlot], prompt: Sequence[int]) -> tuple[int, int]:
    """(seq, reused). A prompt that continues a slot's cache (a conversation's next turn,
    another request on the same long system prompt: most of it is there) takes the slot
    holding its longest prefix. Any other prompt takes the slot with the least to lose —
    the least cache beyond what they share, the least recently used on a tie — so a short
    side request (a title, a summary) never wipes a long conversation's cache for the few
    tokens they share. At least the prompt's last token is always decoded again: its
    logits give the first generated token."""
    shared = {slot.seq: common_prefix_length(slot.cached, prompt) for slot in free}
    return _pick(free, prompt, shared)


def _pick(
    free: Sequence[FreeSlot], prompt: Sequence[int], shared: Mapping[int, int]
) -> tuple[int, int]:
    """pick_slot, given each slot's shared prefix with the prompt (`shared`, by seq)."""
    best = max(free, key=lambda slot: (shared[slot.seq], -slot.last_used))
    if shared[best.seq] < CONTINUES * len(prompt):
        best = min(free, key=lambda s: (len(s.cached) - shared[s.seq], s.last_used))
    reused = min(shared[best.seq], max(len(prompt) - 1, 0))
    return best.seq, reused


# Fewer shared tokens than this are cheaper to prefill than to copy or wait for.
MIN_SHARED = 32
# A slot's cache about to be overwritten is saved to host memory when it holds at least
# this many tokens the new request will not keep.
MIN_SAVED = 256


def to_save(slot: SlotView, start: Start) -> bool:
    """Whether taking `slot` for `start` loses enough of its cache to put it aside first."""
    kept = start.reused if start.copy_from is None and start.restore is None else 0
    return slot.seq == start.seq and len(slot.cached) - kept >= MIN_SAVED


@dataclass(frozen=True, slots=True)
class SlotView:
    seq: int
    cached: Sequence[int]  # the tokens its sequence holds
    last_used: float
    free: bool = True
    # A busy slot's prompt while it is still being prefilled (empty otherwise).
    prefilling: Sequence[int] = ()


@dataclass(frozen=True, slots=True)
class Saved:
    """A conversation's cache put aside in host memory when its slot was taken."""

    key: int
    tokens: Sequence[int]


@dataclass(frozen=True, slots=True)
class Start:
    """Run the request in `seq`, reusing the first `reused` prompt tokens: the slot's own
    cache, those of another slot (`copy_from`, copied into it), or a saved cache
    (`restore`, put back into it)."""

    seq: int
    reused: int
    copy_from: int | None = None
    restore: int | None = None


def plan_start(
    slots: Sequence[SlotView], prompt: Sequence[int], saved: Sequence[Saved] = ()
) -> Start | None:
    """Where a request starts (see Start), or None: wait, because a slot now prefilling
    the same prefix will hold more of it than any cache does now — one prefill, then
    copies, instead of one prefill each. Needs a free slot."""
    # Each cache's shared prefix, measured once: prompts run to tens of thousands of tokens.
    held = {s.seq: common_prefix_length(s.cached, prompt) for s in slots}
    free = [FreeSlot(s.seq, s.cached, s.last_used) for s in slots if s.free]
    seq, reused = _pick(free, prompt, held)
    limit = max(len(prompt) - 1, 0)  # the last prompt token is always decoded again
    start = Start(seq, reused)
    donors = [s.seq for s in slots if s.seq != seq]
    if donors:
        donor = max(donors, key=held.__getitem__)
        shared = min(held[donor], limit)
        if shared >= reused + MIN_SHARED:
            start = Start(seq, shared, donor)
    if saved:
        kept = {s.key: common_prefix_length(s.tokens, prompt) for s in saved}
        key = max(kept, key=kept.__getitem__)
        shared = min(kept[key], limit)
        if shared >= start.reused + MIN_SHARED:
            start = Start(seq, shared, restore=key)
    coming = max((common_prefix_length(s.prefilling, prompt) for s in slots), default=0)
    if min(coming, limit) >= start.reused + MIN_SHARED:
        return None
    return start


def plan_fresh(slots: Sequence[SlotView]) -> Start:
    """Where a request that reuses no cache starts (one that scores its whole prompt:
    logits of cached tokens are gone): the free slot with the least cache to lose. Needs
    a free slot."""
    free = [s for s in slots if s.free]
    best = min(free, key=lambda s: (len(s.cached), s.last_used))
    return Start(best.seq, 0)


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    tokens: Sequence[int]  # still to decode: the prompt's rest, or the last sampled token
    start: int  # position of tokens[0]
    all_logits: bool = False  # keep every token's logits (the prompt is being scored)


def plan_step(pending: Sequence[Pending], budget: int, cost: Line | None = None) -> list[Row]:
    """Rows for one decode step of at most `budget` tokens. Sequences already generating
    (one token each) go first, so a long prompt never stalls them; prompts follow, the one
    with the least left first (so a short prompt is not stuck behind a long one), a chunk
    at a time. A row that carries its sequence's last pending token asks for logits.

    Once a prompt finishes in the step, another joins it only when that is worth it by the
    step cost model (`cost`; without one, every prompt that fits joins)."""
    order = sorted(pending, key=lambda p: len(p.tokens))  # generating ones have one token
    prompts_left = sum(len(p.tokens) > 1 for p in pending)
    rows: list[Row] = []
    used = finishing = 0
    for item in order:
        room = budget - used
        if room <= 0:
            break
        take = item.tokens[:room]
        finished = len(take) == len(item.tokens)
        if len(item.tokens) > 1:
            prompts_left -= 1
            if finishing and not joins(len(take), finished, finishing, prompts_left, cost):
                break
            finishing += finished
        rows.append(
            Row(
                seq=item.seq,
                tokens=take,
                start=item.start,
                output=used + len(take) - 1 if finished else -1,
                all_logits=item.all_logits,
            )
        )
        used += len(take)
    return rows


def joins(tokens: int, finishes: bool, finishing: int, behind: int, cost: Line | None) -> bool:
    """Whether a prompt's `tokens` join a step in which `finishing` prompts already finish,
    with `behind` prompts queued after it. Joining delays each of those finishing by the
    tokens' cost; waiting for its own step delays this prompt and all behind it by one
    step's fixed cost. A chunk that does not finish the prompt only delays the others."""
    if cost is None:
        return True
    if not finishes:
        return False
    return cost.per_token_s * tokens * finishing <= cost.fixed_s * (1 + behind)
