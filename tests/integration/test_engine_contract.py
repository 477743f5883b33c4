"""The engine contract, run against both backends: llama.cpp on tiny GGUFs built here, and
the scripted backend the overhead benchmark and load tests use. Whatever the neuron relies
on is asserted here for both, which is what makes the scripted engine a fair stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cortex_core.config import ModelProfile, ScriptProfile
from cortex_neuron.channel import Errored, Event, Finished, TextChunk, TokenChannel
from cortex_neuron.engine import RATE_SAMPLE_TOKENS, Engine, EngineError, Job
from cortex_wire.messages import ChatMessage, InferRequest, SamplingParams
from tests.support.tiny_gguf import build_tiny_gguf

HELLO = ("Hello", ",", " world", "!")
TICK = ("tick", " tock")
MakeEngine = Callable[..., Awaitable[Engine]]


@pytest.fixture(params=["llama", "scripted"])
async def make_engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeEngine]:
    engines: list[Engine] = []

    async def make(
        reply: tuple[str, ...] = HELLO,
        *,
        endless: bool = False,
        parallel: int = 1,
        n_ctx: int = 512,
        queue_depth: int = 8,
    ) -> Engine:
        if request.param == "llama":
            model = build_tiny_gguf(
                tmp_path / f"m{len(engines)}.gguf", reply, endless=endless, n_ctx=n_ctx
            )
            profile = ModelProfile(id="m", path=str(model.path), n_ctx=n_ctx, parallel=parallel)
        else:
            # Paced, so a test's reader keeps up as it would with a real model.
            script = ScriptProfile(reply="".join(reply), repeat=endless, tokens_per_s=2000)
            profile = ModelProfile(id="m", script=script, n_ctx=n_ctx, parallel=parallel)
        engine = Engine(profile, n_threads=1, queue_depth=queue_depth)
        await engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.stop()


@dataclass
class Outcome:
    text: str = ""
    reasoning: str = ""
    chunk_tokens: int = 0
    end: Finished | Errored | None = None
    events: list[Event] = field(default_factory=list)


def chat(content: str = "hi", **params: object) -> InferRequest:
    return InferRequest(
        request_id=content,
        model="m",
        stream_subject="unused",
        messages=[ChatMessage(role="user", content=content)],
        params=SamplingParams(**{"temperature": 0.0, **params}),  # type: ignore[arg-type]
    )


def submit(engine: Engine, request: InferRequest) -> Job:
    job = Job(request=request, channel=TokenChannel(asyncio.get_running_loop()))
    engine.submit(job)
    return job


async def first_chunk(job: Job, outcome: Outcome) -> None:
    """Read until the job has produced text (it is running, not queued)."""
    while outcome.chunk_tokens == 0:
        await read(job, outcome, until_end=False)


# The engine says nothing while it prefills: a real model's long prompt on one thread, on a
# machine whose cores other work holds, can take tens of seconds before its first event.
SILENCE_S = 120


async def read(job: Job, outcome: Outcome, until_end: bool = True) -> Outcome:
    while outcome.end is None:
        events = await job.channel.take(SILENCE_S)
        assert events, f"the engine went silent for {SILENCE_S} s"
        for event in events:
            outcome.events.append(event)
            if isinstance(event, TextChunk):
                outcome.chunk_tokens += event.tokens
                if event.kind == "reasoning":
                    outcome.reasoning += event.text
                else:
                    outcome.text += event.text
            else:
                outcome.end = event
        if not until_end:
            break
    return outcome


async def run(engine: Engine, request: InferRequest) -> Outcome:
    return await read(submit(engine, request), Outcome())


def finished(outcome: Outcome) -> Finished:
    assert isinstance(outcome.end, Finished), outcome.end
    return outcome.end


async def test_reply_ends_at_end_of_generation_with_consistent_usage(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine()
    request = chat()
    outcome = await run(engine, request)
    end = finished(outcome)
    assert (outcome.text, end.finish_reason) == ("Hello, world!", "stop")
    assert end.usage.completion_tokens == outcome.chunk_tokens > 0
    assert end.usage.prompt_tokens == engine.count_tokens(request)
    assert end.timings.prefill_s >= 0 and end.timings.decode_s >= 0


async def test_max_tokens_ends_with_length(make_engine: MakeEngine) -> None:
    engine = await make_engine(TICK, endless=True)
    end = finished(outcome := await run(engine, chat(max_tokens=5)))
    assert (end.finish_reason, end.usage.completion_tokens) == ("length", 5)
    assert ("tick tock" * 5).startswith(outcome.text)


async def test_stop_sequence_cuts_the_text_and_names_itself(make_engine: MakeEngine) -> None:
    engine = await make_engine()
    outcome = await run(engine, chat(stop=[" wor"]))
    end = finished(outcome)
    assert (outcome.text, end.finish_reason, end.stop_sequence) == ("Hello,", "stop", " wor")


async def test_reasoning_goes_to_its_own_channel(make_engine: MakeEngine) -> None:
    engine = await make_engine(("<think>", "hm", "</think>", "Hi"))
    assert engine.dialect.inline_markers() == ["<think>", "</think>"]
    outcome = await run(engine, chat())
    assert (outcome.reasoning, outcome.text) == ("hm", "Hi")
    assert finished(outcome).usage.reasoning_tokens > 0


async def test_reasoning_budget_closes_reasoning_for_the_model(make_engine: MakeEngine) -> None:
    engine = await make_engine(("<think>", "a", "b", "c", "</think>", "Hi"))
    # The budget counts reasoning tokens as usage does: the open marker, then "a".
    outcome = await run(engine, chat(reasoning_budget=2))
    assert outcome.reasoning == "a"
    assert outcome.text.endswith("Hi")
    assert finished(outcome).usage.reasoning_tokens == 3  # with the close marker


async def test_cancel_ends_a_running_request(make_engine: MakeEngine) -> None:
    engine = await make_engine(TICK, endless=True)
    job = submit(engine, chat())
    outcome = Outcome()
    await first_chunk(job, outcome)
    job.cancelled.set()
    end = finished(await read(job, outcome))
    assert end.finish_reason == "cancelled"
    assert engine.busy == 0


async def test_decode_speed_is_known_while_a_long_generation_runs(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine(TICK, endless=True)
    job = submit(engine, chat())
    outcome = Outcome()
    while outcome.chunk_tokens < 3 * RATE_SAMPLE_TOKENS:  # well past the first sample
        await read(job, outcome, until_end=False)
    assert outcome.end is None and engine.tokens_per_s > 0  # live, not only at the end
    job.cancelled.set()
    await read(job, outcome)


async def test_parallel_slots_generate_at_the_same_time(make_engine: MakeEngine) -> None:
    engine = await make_engine(TICK, endless=True, parallel=3)
    jobs = [submit(engine, chat(f"user {i}")) for i in range(3)]
    outcomes = [Outcome() for _ in jobs]
    # Endless generations: with one slot, the second could never start.
    await asyncio.gather(*(first_chunk(j, o) for j, o in zip(jobs, outcomes, strict=True)))
    assert engine.busy == 3
    for job in jobs:
        job.cancelled.set()
    ends = await asyncio.gather(*(read(j, o) for j, o in zip(jobs, outcomes, strict=True)))
    assert [finished(o).finish_reason for o in ends] == ["cancelled"] * 3


async def test_a_freed_slot_takes_the_next_queued_request(make_engine: MakeEngine) -> None:
    engine = await make_engine(TICK, endless=True, parallel=1)
    running = submit(engine, chat("first"))
    await first_chunk(running, Outcome())
    waiting = submit(engine, chat("second", max_tokens=3))
    assert engine.queued == 1
    running.cancelled.set()
    end = finished(await read(waiting, Outcome()))
    assert (end.finish_reason, end.usage.completion_tokens) == ("length", 3)


async def test_full_queue_refuses_at_once(make_engine: MakeEngine) -> None:
    engine = await make_engine(TICK, endless=True, parallel=1, queue_depth=1)
    running = submit(engine, chat("first"))
    await first_chunk(running, Outcome())
    submit(engine, chat("queued"))
    with pytest.raises(EngineError) as refused:
        submit(engine, chat("refused"))
    assert refused.value.wire.code == "overloaded"


async def test_stop_cancels_what_runs_and_fails_what_waits(make_engine: MakeEngine) -> None:
    engine = await make_engine(TICK, endless=True, parallel=1)
    running = submit(engine, chat("first"))
    running_outcome = Outcome()
    await first_chunk(running, running_outcome)
    waiting = submit(engine, chat("second"))
    await engine.stop()
    assert finished(await read(running, running_outcome)).finish_reason == "cancelled"
    failed = (await read(waiting, Outcome())).end
    assert isinstance(failed, Errored) and failed.error.code == "unloading"


async def test_prompt_over_the_context_is_refused_with_the_numbers(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine(n_ctx=64)
    outcome = await run(engine, chat("word " * 100))
    assert isinstance(outcome.end, Errored)
    assert outcome.end.error.code == "context_length_exceeded"
    assert "64" in outcome.end.error.message


async def test_a_repeated_prompt_reuses_its_cached_prefix(make_engine: MakeEngine) -> None:
    engine = await make_engine()
    first = finished(await run(engine, chat("same question")))
    again = finished(await run(engine, chat("same question")))
    assert first.usage.cached_tokens == 0
    assert again.usage.cached_tokens == again.usage.prompt_tokens - 1


async def test_a_follow_up_turn_reuses_the_conversation_so_far(make_engine: MakeEngine) -> None:
    engine = await make_engine(parallel=2)
    first = await run(engine, chat("question one"))
    follow_up = InferRequest(
        request_id="follow-up",
        model="m",
        stream_subject="unused",
        messages=[
            ChatMessage(role="user", content="question one"),
            ChatMessage(role="assistant", content=first.text),
            ChatMessage(role="user", content="question two"),
        ],
        params=SamplingParams(temperature=0.0),
    )
    usage = finished(await run(engine, follow_up)).usage
    assert usage.cached_tokens >= finished(first).usage.prompt_tokens


async def test_output_is_the_same_alone_or_batched(make_engine: MakeEngine) -> None:
    engine = await make_engine(TICK, endless=True, parallel=4)
    request = chat("the one", max_tokens=12, seed=7, temperature=0.9)
    alone = await run(engine, request)
    others = [chat(f"other {i}", max_tokens=20 + i) for i in range(3)]
    together = await asyncio.gather(*(run(engine, r) for r in [request, *others]))
    assert together[0].text == alone.text
    assert finished(together[0]).usage.completion_tokens == 12


async def test_a_prompt_with_no_tokens_is_refused_not_waited_on(make_engine: MakeEngine) -> None:
    """Nothing predicts a first token from no tokens: refused before it is accepted, and
    a job that reaches the engine with such a prompt all the same ends with the error."""
    engine = await make_engine()
    given = InferRequest(request_id="none", model="m", stream_subject="unused", prompt_tokens=[])
    with pytest.raises(EngineError, match="the prompt has no tokens"):
        engine.checked_prompt(given)
    job = Job(request=chat(), channel=TokenChannel(asyncio.get_running_loop()), prompt=([], ""))
    engine.submit(job)
    end = (await read(job, Outcome())).end
    assert isinstance(end, Errored) and end.error.message == "the prompt has no tokens"
    assert finished(await run(engine, chat())).finish_reason == "stop"  # and it serves on


@pytest.mark.parametrize(
    "params",
    [{"json_schema": {"type": "nonsense"}}, {"logit_bias": {10**9: 5.0}}],
    ids=["schema without a grammar", "bias outside the vocabulary"],
)
async def test_what_the_sampler_refuses_is_refused_before_acceptance(
    make_engine: MakeEngine, params: dict[str, object]
) -> None:
    """The neuron checks a request with `checked_prompt` before it accepts it, so the
    refusal is an HTTP status even for a stream; the engine refuses it alike."""
    engine = await make_engine()
    with pytest.raises(EngineError) as refused:
        engine.checked_prompt(chat(**params))
    assert refused.value.wire.code == "invalid_request"
    end = (await run(engine, chat(**params))).end
    assert isinstance(end, Errored) and end.error == refused.value.wire
