"""Continuous-batching decisions: slot choice and step planning."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cortex_neuron.backend import Row
from cortex_neuron.slots import FreeSlot, Pending, SlotView, Start, pick_slot, plan_start, plan_step
from cortex_neuron.step_cost import Line


def test_the_slot_holding_the_longest_prefix_wins() -> None:
    free = [FreeSlot(0, [1, 2], 5.0), FreeSlot(1, [1, 2, 3, 9], 1.0), FreeSlot(2, [], 0.0)]
    assert pick_slot(free, [1, 2, 3, 4]) == (1, 3)


def test_on_a_tie_the_least_recently_used_slot_is_taken() -> None:
    free = [FreeSlot(0, [7], 5.0), FreeSlot(1, [8], 1.0), FreeSlot(2, [9], 3.0)]
    assert pick_slot(free, [1, 2]) == (1, 0)


def test_a_short_new_prompt_keeps_off_a_long_cache_it_shares_a_little_with() -> None:
    conversation = list(range(100))
    free = [FreeSlot(0, conversation, 1.0), FreeSlot(1, [], 5.0)]
    side = [0, 1, 2, *[77] * 10]  # shares 3 tokens (a system prompt's first line)
    assert pick_slot(free, side) == (1, 0)
    # with no empty slot, the one with the least to lose
    free = [FreeSlot(0, conversation, 1.0), FreeSlot(1, [0, 1, 9, 9], 5.0)]
    assert pick_slot(free, side) == (1, 2)
    # the conversation's next turn still finds its whole cache
    assert pick_slot(free, [*conversation, 100, 101]) == (0, 100)


def test_a_fully_cached_prompt_still_decodes_its_last_token() -> None:
    assert pick_slot([FreeSlot(0, [1, 2, 3], 0.0)], [1, 2, 3]) == (0, 2)
    assert pick_slot([FreeSlot(0, [1, 2, 3, 4], 0.0)], [1, 2]) == (0, 1)


def test_generating_sequences_go_first_and_prompts_fill_the_rest_in_chunks() -> None:
    pending = [Pending(0, [10, 11, 12, 13, 14], 0), Pending(1, [99], 40), Pending(2, [5], 7)]
    assert plan_step(pending, budget=4) == [
        Row(1, [99], 40, output=0),
        Row(2, [5], 7, output=1),
        Row(0, [10, 11], 0, output=-1),  # mid-prompt: no logits yet
    ]
    assert plan_step([Pending(0, [12, 13, 14], 2)], budget=4) == [Row(0, [12, 13, 14], 2, 2)]


@given(
    st.lists(st.lists(st.integers(0, 9), min_size=1, max_size=12), min_size=1, max_size=6),
    st.integers(1, 32),
)
def test_a_plan_fits_the_budget_and_asks_logits_only_at_a_sequence_end(
    token_lists: list[list[int]], budget: int
) -> None:
    pending = [Pending(seq, tokens, 0) for seq, tokens in enumerate(token_lists)]
    rows = plan_step(pending, budget)
    assert 0 < sum(len(r.tokens) for r in rows) <= budget
    offset = 0
    for row in rows:
        whole = len(row.tokens) == len(token_lists[row.seq])
        assert row.tokens == token_lists[row.seq][: len(row.tokens)]
        assert row.output == (offset + len(row.tokens) - 1 if whole else -1)
        offset += len(row.tokens)


def test_the_prompt_with_least_left_goes_first() -> None:
    pending = [Pending(0, list(range(40)), 0), Pending(1, [7, 8, 9], 5), Pending(2, [3], 9)]
    assert [row.seq for row in plan_step(pending, budget=64)] == [2, 1, 0]


CPU = Line(fixed_s=0.010, per_token_s=0.002)  # a step's fixed cost is five tokens' worth
GPU = Line(fixed_s=0.005, per_token_s=0.00002)


def test_on_a_cpu_follow_up_turns_arriving_together_finish_one_per_step() -> None:
    """Four 25-token prompts: one step each gives first tokens at 60, 120, 180, 240 ms;
    one step for all gives every one at 210 ms."""
    pending = [Pending(seq, [seq] * 25, 0) for seq in range(4)]
    rows = plan_step(pending, budget=512, cost=CPU)
    assert [(row.seq, len(row.tokens)) for row in rows] == [(0, 25)]
    # the decoding sequences still ride along
    rows = plan_step([*pending, Pending(9, [1], 50)], budget=512, cost=CPU)
    assert [row.seq for row in rows] == [9, 0]


def test_tiny_prompts_share_a_step_and_a_gpu_batches_what_a_cpu_would_not() -> None:
    # Six 3-token prompts on the CPU: a fifth joining would cost the four finishing 6 ms
    # each (24 ms) to save itself and the sixth a step's fixed cost each (20 ms).
    tiny = [Pending(seq, [seq] * 3, 0) for seq in range(6)]
    assert len(plan_step(tiny, budget=512, cost=CPU)) == 4
    turns = [Pending(seq, [seq] * 25, 0) for seq in range(4)]
    assert len(plan_step(turns, budget=512, cost=GPU)) == 4
    assert len(plan_step(turns, budget=512)) == 4  # no cost model yet: as before


def test_a_chunk_that_does_not_finish_its_prompt_waits_once_another_finishes() -> None:
    pending = [Pending(0, [1] * 3, 0), Pending(1, [2] * 600, 0)]
    assert [len(row.tokens) for row in plan_step(pending, budget=512, cost=GPU)] == [3]
    assert [len(row.tokens) for row in plan_step(pending, budget=512)] == [3, 509]


SYSTEM = list(range(100, 200))  # a shared 100-token prefix


def test_a_prefix_held_by_another_slot_is_copied_into_the_one_taken() -> None:
    busy = SlotView(0, [*SYSTEM, 1, 2, 3], 1.0, free=False)
    empty = SlotView(1, [], 0.0)
    prompt = [*SYSTEM, *range(500, 800)]  # mostly new: it takes the empty slot
    assert plan_start([busy, empty], prompt) == Start(1, 100, copy_from=0)
    # the slot's own cache is used when it holds as much
    own = SlotView(1, [*SYSTEM, 9], 0.0)
    assert plan_start([busy, own], prompt) == Start(1, 100)
    # a few shared tokens are not worth a copy
    short = SlotView(0, [*SYSTEM[:10], 7], 1.0, free=False)
    assert plan_start([short, empty], prompt) == Start(1, 0)


def test_behind_a_prefix_being_prefilled_a_request_waits_to_copy_it() -> None:
    prefilling = SlotView(0, SYSTEM[:40], 1.0, free=False, prefilling=[*SYSTEM, 1, 2])
    empty = SlotView(1, [], 0.0)
    assert plan_start([prefilling, empty], [*SYSTEM, 3, 4]) is None
    # once that prefill holds it, the copy
    done = SlotView(0, [*SYSTEM, 1, 2], 1.0, free=False)
    assert plan_start([done, empty], [*SYSTEM, 3, 4]) == Start(1, 100, copy_from=0)
    # a prompt that shares little with it does not wait
    assert plan_start([prefilling, empty], [*SYSTEM[:5], 3, 4]) == Start(1, 0)


def test_a_saved_conversation_is_restored_when_it_holds_the_most() -> None:
    from cortex_neuron.slots import Saved, to_save

    conversation = [*SYSTEM, *range(300, 700)]
    taken = SlotView(0, [1, 2, 3], 1.0)
    saved = [Saved(7, conversation), Saved(8, SYSTEM[:50])]
    next_turn = [*conversation, 1, 2]
    assert plan_start([taken], next_turn, saved) == Start(0, len(conversation), restore=7)
    # the slot's own cache wins when it holds as much
    assert plan_start([SlotView(0, conversation, 1.0)], next_turn, saved) == Start(
        0, len(conversation)
    )
    # a slot about to lose a long cache is saved first; a short one is not worth it
    other = [*range(900, 1000)]
    long_slot = SlotView(0, conversation, 1.0)
    start = plan_start([long_slot], other)
    assert start == Start(0, 0) and to_save(long_slot, start)
    assert not to_save(SlotView(0, SYSTEM, 1.0), start)
