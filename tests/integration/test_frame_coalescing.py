"""Bus efficiency: a fast stream's tokens share frames, and the first token is never held
back to wait for company."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from cortex_wire import codec, subjects
from cortex_wire.messages import Cancel, Delta, Done
from tests.conftest import write_catalogue
from tests.integration.test_neuron import NODE, Stream, assert_numbered, bus, load
from tests.support.neuron import neuron_serving, scripted

__all__ = ["bus"]  # the fixture, shared with test_neuron

TOKENS = 300


@pytest.fixture
async def scripted_neuron(nats_url: str, tmp_path: Path, bus: Client) -> AsyncIterator[None]:
    # 1000 steps/s for 300 tokens: a 0.3 s generation, shorter than one frame interval.
    models = write_catalogue(tmp_path / "models.toml", [scripted("fast", 1000)])
    async with neuron_serving(
        bus, nats_url, models, NODE, frame_interval_s=0.5, keepalive_interval_s=5
    ):
        yield


async def test_tokens_share_frames_and_the_first_is_sent_at_once(
    scripted_neuron: None, bus: Client
) -> None:
    assert (await load(bus, "fast")).ok
    # Pacing is for a neuron under load: another stream runs meanwhile.
    other = await Stream(bus, "req-other").open()
    assert (await other.submit("fast")).accepted
    await other.next()
    stream = await Stream(bus, "req-coalesce").open()
    assert (await stream.submit("fast", max_tokens=TOKENS)).accepted
    frames = await stream.until_end()
    await bus.publish(subjects.CANCEL, codec.encode(Cancel(request_id="req-other")))
    assert isinstance((await other.until_end())[-1], Done)
    assert_numbered(frames)
    deltas = [f for f in frames if isinstance(f, Delta)]
    done = frames[-1]
    assert isinstance(done, Done) and done.usage.completion_tokens == TOKENS
    assert sum(d.tokens for d in deltas) == TOKENS
    assert "".join(d.text for d in deltas) == ("abc" * TOKENS)[:TOKENS]
    # The first frame left as soon as there was a token; the rest waited out one interval
    # and travelled together (far fewer messages than tokens).
    assert deltas[0].tokens < TOKENS // 2
    assert len(deltas) <= 3


@pytest.fixture
async def slow_neuron(nats_url: str, tmp_path: Path, bus: Client) -> AsyncIterator[None]:
    # 25 steps/s: each stream's token comes every 40 ms or more, slower than the 20 ms
    # frame interval (a CPU host's decode).
    models = write_catalogue(tmp_path / "models.toml", [scripted("slow", 25)])
    async with neuron_serving(bus, nats_url, models, NODE, keepalive_interval_s=5):
        yield


async def test_under_load_slow_steps_still_put_two_tokens_in_a_frame(
    slow_neuron: None, bus: Client
) -> None:
    assert (await load(bus, "slow")).ok
    # A first request teaches the engine one stream's decode rate.
    first = await Stream(bus, "req-first").open()
    assert (await first.submit("slow", max_tokens=8)).accepted
    await first.until_end()
    streams = [await Stream(bus, f"req-{i}").open() for i in range(2)]
    for stream in streams:
        assert (await stream.submit("slow", max_tokens=40)).accepted
    for stream in streams:
        frames = await stream.until_end()
        assert_numbered(frames)
        deltas = [f for f in frames if isinstance(f, Delta)]
        assert sum(d.tokens for d in deltas) == 40
        # One frame per token at the 20 ms interval; about two tokens a frame when the
        # pause follows the stream's own pace.
        assert len(deltas) <= 30, [d.tokens for d in deltas]
