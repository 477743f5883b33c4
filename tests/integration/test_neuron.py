"""A neuron alone on a real nats-server: load, stream, cancel, queue, refuse."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import nats
import pytest
from nats.aio.client import Client

from cortex_neuron.main import run_neuron
from cortex_wire import codec, subjects
from cortex_wire.messages import (
    Cancel,
    CatalogueEntry,
    ChatMessage,
    ControlReply,
    Delta,
    Done,
    Failed,
    Frame,
    Heartbeat,
    InferReply,
    InferRequest,
    KeepAlive,
    LoadModel,
    ModelEvent,
    SamplingParams,
)
from tests.conftest import free_port, write_catalogue
from tests.support.stack import stack_settings
from tests.support.tiny_gguf import TinyModel, build_tiny_gguf

NODE = "neuron-under-test"


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Client]:
    nc = await nats.connect(nats_url)
    yield nc
    await nc.close()


@pytest.fixture
def neuron_metrics() -> str:
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
async def neuron(
    nats_url: str,
    hello_model: TinyModel,
    endless_model: TinyModel,
    tmp_path: Path,
    bus: Client,
    neuron_metrics: str,
):
    models = write_catalogue(
        tmp_path / "models.toml",
        [
            {"id": "hello", "path": str(hello_model.path), "n_ctx": 256},
            {"id": "endless", "path": str(endless_model.path), "n_ctx": 8192},
            {
                "id": "limited",
                "path": str(endless_model.path),
                "n_ctx": 8192,
                "max_in_flight": 1,
                "max_queue_depth": 0,
            },
        ],
    )
    neuron = {"keepalive_interval_s": 0.05, "metrics_listen": neuron_metrics}
    settings = stack_settings(nats_url, models, node=NODE, neuron=neuron)
    first_beat = asyncio.get_running_loop().create_future()

    async def on_beat(msg) -> None:
        if not first_beat.done():
            first_beat.set_result(codec.decode(msg.data, Heartbeat))

    sub = await bus.subscribe(subjects.heartbeat(NODE), cb=on_beat)
    stop = asyncio.Event()
    task = asyncio.create_task(run_neuron(settings, stop))
    heartbeat = await asyncio.wait_for(first_beat, 10)
    await sub.unsubscribe()
    yield heartbeat
    stop.set()
    await asyncio.wait_for(task, 30)


async def load(bus: Client, model: str) -> ControlReply:
    raw = await bus.request(
        subjects.control(NODE), codec.encode(LoadModel(model=model)), timeout=30
    )
    return codec.decode(raw.data, ControlReply)


class Stream:
    """A request's frames, as a subscriber on its stream subject sees them."""

    def __init__(self, bus: Client, request_id: str) -> None:
        self.bus = bus
        self.request_id = request_id
        self.subject = subjects.stream(request_id)
        self.frames: asyncio.Queue[Frame] = asyncio.Queue()

    async def open(self) -> Stream:
        async def on_frame(msg) -> None:
            await self.frames.put(codec.decode_frame(msg.data))

        self.sub = await self.bus.subscribe(self.subject, cb=on_frame)
        return self

    async def submit(
        self, model: str, max_tokens: int | None = None, content: str = "hi"
    ) -> InferReply:
        request = InferRequest(
            request_id=self.request_id, model=model, stream_subject=self.subject,
            messages=[ChatMessage(role="user", content=content)],
            params=SamplingParams(max_tokens=max_tokens, temperature=0.0),
        )  # fmt: skip
        raw = await self.bus.request(subjects.infer(NODE), codec.encode(request), timeout=10)
        return codec.decode(raw.data, InferReply)

    async def next(self) -> Frame:
        return await asyncio.wait_for(self.frames.get(), 30)

    async def until_end(self) -> list[Frame]:
        frames = []
        while True:
            frame = await self.next()
            frames.append(frame)
            if isinstance(frame, Done | Failed):
                return frames


def assert_numbered(frames: list[Frame]) -> None:
    assert [f.seq for f in frames] == list(range(len(frames)))


async def test_heartbeat_announces_devices_and_catalogue(neuron: Heartbeat) -> None:
    assert neuron.node == NODE
    assert neuron.devices[0].kind == "cpu"
    assert neuron.devices[0].total_mb == 4096
    assert sorted(e.id for e in neuron.catalogue) == ["endless", "hello", "limited"]
    assert neuron.models == []


async def test_load_announces_events_and_streams_numbered_frames(neuron, bus: Client) -> None:
    events: list[ModelEvent] = []

    async def on_event(msg) -> None:
        events.append(codec.decode(msg.data, ModelEvent))

    sub = await bus.subscribe(subjects.model_event(NODE, "hello"), cb=on_event)
    beats = await bus.subscribe(subjects.heartbeat(NODE))
    assert (await load(bus, "hello")).ok
    await bus.flush()
    await sub.unsubscribe()
    assert [e.state for e in events] == ["loading", "ready"]
    # llama.cpp's own load progress reached the bus in heartbeats.
    progress = []
    while not progress or progress[-1] < 1.0:
        heartbeat = codec.decode((await beats.next_msg(timeout=10)).data, Heartbeat)
        progress += [m.load_progress for m in heartbeat.models if m.id == "hello"]
    await beats.unsubscribe()
    assert progress == sorted(progress)

    stream = await Stream(bus, "req-1").open()
    assert (await stream.submit("hello")).accepted
    frames = await stream.until_end()
    assert_numbered(frames)
    assert "".join(f.text for f in frames if isinstance(f, Delta)) == "Hello, world!"
    done = frames[-1]
    assert isinstance(done, Done)
    assert done.finish_reason == "stop"
    assert (
        done.usage.completion_tokens == 4 == sum(f.tokens for f in frames if isinstance(f, Delta))
    )


async def test_cancel_stops_generation_between_tokens(neuron, bus: Client) -> None:
    assert (await load(bus, "endless")).ok
    stream = await Stream(bus, "req-cancel").open()
    assert (await stream.submit("endless")).accepted
    while not isinstance(await stream.next(), Delta):
        pass
    await bus.publish(subjects.CANCEL, codec.encode(Cancel(request_id="req-cancel")))
    frames = await stream.until_end()
    done = frames[-1]
    assert isinstance(done, Done)
    assert done.finish_reason == "cancelled"
    # It would have run to the end of its 8192-token context.
    assert done.usage.completion_tokens < 8000


async def test_generated_tokens_are_counted_while_a_generation_runs(
    neuron, bus: Client, neuron_metrics: str
) -> None:
    """Not only once it ends: rate() over a long generation would be a spike at its end."""
    assert (await load(bus, "endless")).ok
    stream = await Stream(bus, "req-counted").open()
    assert (await stream.submit("endless")).accepted
    seen = 0
    while seen < 20:
        frame = await stream.next()
        seen += len(frame.text) if isinstance(frame, Delta) else 0
    assert await counted_tokens(neuron_metrics) > 0
    await bus.publish(subjects.CANCEL, codec.encode(Cancel(request_id="req-counted")))
    done = (await stream.until_end())[-1]
    assert isinstance(done, Done)
    assert await counted_tokens(neuron_metrics) == done.usage.completion_tokens


async def counted_tokens(metrics: str) -> float:
    text = (await asyncio.to_thread(httpx.get, f"http://{metrics}/metrics")).text
    series = 'cortex_neuron_generated_tokens_total{model="endless"}'
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(series)
    )


async def test_queued_request_gets_keepalives_then_runs(neuron, bus: Client) -> None:
    assert (await load(bus, "endless")).ok
    busy = await Stream(bus, "req-busy").open()
    assert (await busy.submit("endless")).accepted
    waiting = await Stream(bus, "req-waiting").open()
    assert (await waiting.submit("endless", max_tokens=3)).accepted
    first = await waiting.next()
    assert isinstance(first, KeepAlive) and first.phase == "queued"
    await bus.publish(subjects.CANCEL, codec.encode(Cancel(request_id="req-busy")))
    frames = [first, *await waiting.until_end()]
    assert_numbered(frames)
    assert "".join(f.text for f in frames if isinstance(f, Delta)) == "tick tocktick"
    assert isinstance(frames[-1], Done) and frames[-1].finish_reason == "length"


async def test_prompt_longer_than_context_is_refused_with_the_numbers(neuron, bus: Client) -> None:
    """Measured before acceptance, so the gateway can answer a real 400 even to a stream."""
    assert (await load(bus, "hello")).ok
    stream = await Stream(bus, "req-long").open()
    refused = await stream.submit("hello", content="x " * 200)
    assert not refused.accepted and refused.error is not None
    assert refused.error.code == "context_length_exceeded"
    assert "context of 256 tokens" in refused.error.message


async def test_refusals_are_immediate_and_explained(neuron, bus: Client) -> None:
    not_loaded = await Stream(bus, "req-cold").submit("hello")
    assert not not_loaded.accepted and not_loaded.error is not None
    assert not_loaded.error.code == "model_not_ready"

    unknown = await load(bus, "nope")
    assert not unknown.ok and unknown.error is not None and unknown.error.code == "model_not_found"

    raw = await bus.request(subjects.infer(NODE), b"{not json", timeout=10)
    garbage = codec.decode(raw.data, InferReply)
    assert (
        not garbage.accepted and garbage.error is not None and garbage.error.code == "bad_request"
    )
    with pytest.raises(msgspec.ValidationError):
        codec.decode(b'{"accepted": "maybe"}', InferReply)


async def test_a_model_at_its_limits_refuses_at_once(neuron, bus: Client) -> None:
    assert (await load(bus, "limited")).ok
    running = await Stream(bus, "req-running").open()
    assert (await running.submit("limited")).accepted
    refused = await Stream(bus, "req-refused").submit("limited")
    assert not refused.accepted and refused.error is not None
    assert refused.error.code == "overloaded"
    assert "at capacity: 1 running, 0 queued (limits 1 and 0)" in refused.error.message
    await bus.publish(subjects.CANCEL, codec.encode(Cancel(request_id="req-running")))
    done = (await running.until_end())[-1]
    assert isinstance(done, Done) and done.finish_reason == "cancelled"
    # The slot is free again: the next request is taken.
    again = await Stream(bus, "req-again").open()
    assert (await again.submit("limited", max_tokens=2)).accepted
    assert isinstance((await again.until_end())[-1], Done)


async def test_a_gguf_put_in_place_later_is_announced_as_it_is(
    nats_url: str, tmp_path: Path, bus: Client
) -> None:
    """An operator copies the model in after the neuron started (or replaces it): the
    catalogue entry says what the file is from the next heartbeat on, not from a restart."""
    node = "late-file-neuron"
    path = tmp_path / "late.gguf"
    models = write_catalogue(tmp_path / "models.toml", [{"id": "late", "path": str(path)}])
    settings = stack_settings(nats_url, models, node=node)
    beats = await bus.subscribe(subjects.heartbeat(node))
    stop = asyncio.Event()
    task = asyncio.create_task(run_neuron(settings, stop))

    async def entry() -> CatalogueEntry:
        heartbeat = codec.decode((await beats.next_msg(timeout=10)).data, Heartbeat)
        [late] = heartbeat.catalogue
        return late

    try:
        before = await entry()
        assert (before.architecture, before.footprint_mb, before.file_size) == ("", 0, 0)
        built = build_tiny_gguf(path, ("Hello", "!"))
        size, after = path.stat().st_size, before
        for _ in range(50):  # the heartbeats of a few seconds at most
            after = await entry()
            if after.file_size == size:  # (a beat may have seen the file half written)
                break
        assert after.file_size == size
        assert after.architecture == "llama" and after.footprint_mb > 0
        assert after.context_length == built.n_ctx
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
