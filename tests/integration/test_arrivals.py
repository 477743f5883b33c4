"""Requests that reach an idle engine together start in one decode step; held requests are
never stranded (released once the burst is in, failed on unload)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from cortex_core.config import ModelProfile, ScriptProfile
from cortex_neuron import engine as engine_module
from cortex_neuron.channel import Errored, TokenChannel
from cortex_neuron.engine import Engine, Job
from cortex_neuron.scripted_backend import ScriptedBackend
from cortex_wire.messages import Done, InferReply
from tests.conftest import write_catalogue
from tests.integration.test_engine_contract import Outcome, chat, finished, read
from tests.integration.test_neuron import NODE, Stream, bus, load
from tests.support.neuron import neuron_serving, scripted

__all__ = ["bus"]  # the fixture, shared with test_neuron


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    script = ScriptProfile(reply="tick tock", tokens_per_s=2000)
    engine = Engine(ModelProfile(id="m", script=script, parallel=4), n_threads=1)
    await engine.start()
    yield engine
    await engine.stop()


def job(name: str) -> Job:
    return Job(request=chat(name, max_tokens=2), channel=TokenChannel(asyncio.get_running_loop()))


async def test_requests_arriving_together_start_in_one_step(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "HOLD_LIMIT_S", 30.0)  # the test's pause is no limit
    jobs = [job(f"user {i}") for i in range(3)]
    for held in jobs[:2]:
        engine.submit(held, more_coming=True)
    # Held, not started: the engine thread has not seen it.
    assert await jobs[0].channel.take(0.2) == []
    engine.submit(jobs[2])  # the last of the burst
    outcomes = await asyncio.gather(*(read(j, Outcome()) for j in jobs))
    assert [finished(o).usage.completion_tokens for o in outcomes] == [2, 2, 2]
    backend = engine._backend
    assert isinstance(backend, ScriptedBackend)
    assert backend.steps[0] == 3  # all three prefilled together


async def test_a_busy_engine_holds_nothing(engine: Engine) -> None:
    running = job("running")
    running.request.params.max_tokens = None
    engine.submit(running)
    await running.channel.take(30)  # it runs
    newcomer = job("newcomer")
    engine.submit(newcomer, more_coming=True)  # not held: it joins at the next step
    assert finished(await read(newcomer, Outcome())).usage.completion_tokens == 2
    running.cancelled.set()


async def test_release_hands_over_what_is_held(engine: Engine) -> None:
    held = job("held")
    engine.submit(held, more_coming=True)
    engine.release()  # what the neuron does once no more requests wait behind it
    assert finished(await read(held, Outcome())).finish_reason == "length"


async def test_a_hold_ends_at_its_limit_when_the_rest_never_come(engine: Engine) -> None:
    held = job("held")
    engine.submit(held, more_coming=True)  # and nothing follows, nor any release
    assert finished(await read(held, Outcome())).finish_reason == "length"


async def test_unloading_fails_held_requests_with_the_reason(engine: Engine) -> None:
    held = job("held")
    engine.submit(held, more_coming=True)
    await engine.stop()
    [event] = await held.channel.take(5)
    assert isinstance(event, Errored) and event.error.code == "unloading"


@pytest.fixture
async def neuron(nats_url: str, tmp_path: Path, bus: Client) -> AsyncIterator[None]:
    models = write_catalogue(tmp_path / "models.toml", [scripted("burst", 500, parallel=4)])
    async with neuron_serving(bus, nats_url, models, NODE):
        yield


async def test_a_burst_ending_in_a_refusal_still_runs(
    neuron: None, bus: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sent in one flush, the burst waits at the neuron together; the last request is
    refused, and the ones held for it start once it is handled, not at the hold's limit."""
    monkeypatch.setattr(engine_module, "HOLD_LIMIT_S", 600.0)
    assert (await load(bus, "burst")).ok
    streams = [await Stream(bus, f"burst-{i}").open() for i in range(3)]
    refused = await Stream(bus, "burst-refused").open()
    replies: list[InferReply] = await asyncio.gather(
        *(s.submit("burst", max_tokens=3) for s in streams), refused.submit("no-such-model")
    )
    assert [r.accepted for r in replies] == [True, True, True, False]
    for stream in streams:
        done = (await stream.until_end())[-1]
        assert isinstance(done, Done) and done.usage.completion_tokens == 3
