"""Prompt log probabilities on the engine: the scores of a prompt split over decode steps
and sharing its batch with another prompt are those of the prompt alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cortex_core.config import ModelProfile, ScriptProfile
from cortex_neuron.channel import Errored, Finished, PromptScored, TokenChannel
from cortex_neuron.engine import Engine, Job
from cortex_wire.messages import InferRequest, SamplingParams, TokenLogprob
from tests.support.tiny_gguf import build_tiny_gguf


def scored(prompt: str) -> InferRequest:
    return InferRequest(
        request_id=prompt, model="m", stream_subject="unused", prompt=prompt,
        params=SamplingParams(temperature=0.0, max_tokens=1), logprobs=2, prompt_logprobs=True,
    )  # fmt: skip


async def prompt_scores(job: Job) -> list[TokenLogprob]:
    scores: list[TokenLogprob] = []
    while True:
        for event in await job.channel.take(timeout=60):
            if isinstance(event, PromptScored):
                scores += event.logprobs
            if isinstance(event, Errored):
                raise AssertionError(event.error.message)
            if isinstance(event, Finished):
                return scores


async def run(profile: ModelProfile, prompts: list[str]) -> list[list[TokenLogprob]]:
    """Score `prompts` on one engine, all queued before it starts: they share its steps."""
    engine = Engine(profile, n_threads=1)
    loop = asyncio.get_running_loop()
    jobs = [Job(request=scored(p), channel=TokenChannel(loop)) for p in prompts]
    for job in jobs:
        engine.submit(job)
    await engine.start()
    try:
        return list(await asyncio.gather(*(prompt_scores(job) for job in jobs)))
    finally:
        await engine.stop()


async def test_chunks_and_batch_neighbours_do_not_change_prompt_scores(tmp_path: Path) -> None:
    model = build_tiny_gguf(tmp_path / "m.gguf", ("Hello", ",", " world", "!"))
    prompts = ["Say it, world\n", "Hi there, you!\n"]
    whole = ModelProfile(id="m", path=str(model.path), n_ctx=256)
    alone = [(await run(whole, [prompt]))[0] for prompt in prompts]
    chunked = ModelProfile(id="m", path=str(model.path), n_ctx=256, n_batch=4, parallel=2)
    together = await run(chunked, prompts)
    for mine, theirs in zip(together, alone, strict=True):
        assert [t.token for t in mine] == [t.token for t in theirs]
        assert [t.logprob for t in mine] == pytest.approx([t.logprob for t in theirs], abs=1e-5)
        tops = [[[a.token for a in t.top] for t in scores] for scores in (mine, theirs)]
        assert tops[0] == tops[1]
    assert alone[0][0].logprob is None and alone[0][1].logprob is not None


async def test_a_scripted_model_refuses_to_score() -> None:
    script = ScriptProfile(reply="ok", tokens_per_s=0)
    engine = Engine(ModelProfile(id="m", script=script, n_ctx=64), n_threads=1)
    await engine.start()
    try:
        job = Job(request=scored("x"), channel=TokenChannel(asyncio.get_running_loop()))
        engine.submit(job)
        (event,) = await job.channel.take(timeout=60)
        assert isinstance(event, Errored) and "no logits" in event.error.message
    finally:
        await engine.stop()
