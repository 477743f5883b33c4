"""The gateway's stream follower against a scripted neuron on a real nats-server: gaps and
silence are failures with a reason, and a reader that leaves cancels the request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from cortex_core.config import GatewaySettings
from cortex_core.fleet import FleetState
from cortex_core.nats_server import EmbeddedNats
from cortex_gateway.errors import ApiError
from cortex_gateway.inference import WAITING, Inference, StreamItem
from cortex_wire import codec, subjects
from cortex_wire.messages import (
    Cancel,
    CatalogueEntry,
    Delta,
    Device,
    Done,
    Failed,
    Heartbeat,
    InferReply,
    InferRequest,
    LoadedModel,
    Usage,
    WireError,
)

NODE = "scripted"
Script = Callable[[Client, InferRequest], object]


def fleet_with_ready_model(*nodes: str, interval_s: float = 60.0, age_s: float = 0.0) -> FleetState:
    """A fleet whose `nodes` have model "m" ready, their last heartbeats `age_s` old."""
    fleet = FleetState()
    for node in nodes or (NODE,):
        heartbeat = Heartbeat(
            node=node, instance="x", seq=1, sent_at=0.0, interval_s=interval_s,
            devices=[Device(index=0, name="cpu", kind="cpu", total_mb=1, free_mb=1)],
            memory_budget_mb=1, models=[LoadedModel(id="m", state="ready")],
            catalogue=[CatalogueEntry(id="m", n_ctx=8, footprint_mb=1)],
        )  # fmt: skip
        fleet.observe(heartbeat, time.monotonic() - age_s)
    return fleet


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Client]:
    nc = await nats.connect(nats_url)
    yield nc
    await nc.close()


async def scripted_neuron(bus: Client, script: Script, node: str = NODE) -> None:
    async def on_infer(msg) -> None:
        request = codec.decode(msg.data, InferRequest)
        await msg.respond(codec.encode(InferReply(accepted=True)))
        await script(bus, request)  # type: ignore[misc]

    await bus.subscribe(subjects.infer(node), cb=on_infer)


def inference(bus: Client, *nodes: str) -> Inference:
    settings = GatewaySettings(keepalive_interval_s=0.05, stream_idle_timeout_s=0.3)
    return Inference(bus, fleet_with_ready_model(*nodes), settings)


def request(request_id: str) -> InferRequest:
    return InferRequest(
        request_id=request_id, model="m", stream_subject=subjects.stream(request_id)
    )


async def send(bus: Client, request: InferRequest, *frames: object) -> None:
    for frame in frames:
        await bus.publish(request.stream_subject, codec.encode(frame))


async def until_failed(stream: AsyncIterator[StreamItem]) -> tuple[list[StreamItem], WireError]:
    """Everything the stream yields, and the failure it must end with."""
    seen = [item async for item in stream]
    assert isinstance(seen[-1], Failed), seen[-1]
    return seen[:-1], seen[-1].error


async def test_in_order_frames_pass_through(bus: Client) -> None:
    async def script(bus: Client, req: InferRequest) -> None:
        await send(bus, req, Delta(seq=0, text="a", tokens=1),
                   Done(seq=1, finish_reason="stop", usage=Usage(completion_tokens=1)))  # fmt: skip

    await scripted_neuron(bus, script)
    items = [i async for i in inference(bus).stream(request("ok")) if i is not WAITING]
    assert [type(i).__name__ for i in items] == ["Accepted", "Delta", "Done"]
    assert items[0].node == NODE


async def test_a_gap_in_sequence_numbers_is_a_failure(bus: Client) -> None:
    async def script(bus: Client, req: InferRequest) -> None:
        await send(bus, req, Delta(seq=0, text="a"), Delta(seq=2, text="c"))

    await scripted_neuron(bus, script)
    _, failed = await until_failed(inference(bus).stream(request("gap")))
    assert failed.code == "stream_gap"
    assert "frame 2 arrived, 1 expected" in failed.message


async def test_silence_past_the_deadline_is_a_failure_not_a_hang(bus: Client) -> None:
    async def script(bus: Client, req: InferRequest) -> None:
        return None

    await scripted_neuron(bus, script)
    seen, failed = await until_failed(inference(bus).stream(request("silent")))
    assert failed.code == "stream_timeout"
    assert WAITING in seen  # the HTTP layer got to send keep-alives meanwhile


async def test_a_reader_that_leaves_cancels_the_request(bus: Client) -> None:
    cancels: asyncio.Queue[Cancel] = asyncio.Queue()

    async def on_cancel(msg) -> None:
        await cancels.put(codec.decode(msg.data, Cancel))

    await bus.subscribe(subjects.CANCEL, cb=on_cancel)

    async def script(bus: Client, req: InferRequest) -> None:
        await send(bus, req, Delta(seq=0, text="a"))

    await scripted_neuron(bus, script)
    items = inference(bus).stream(request("leaver"))
    async for item in items:
        if isinstance(item, Delta):
            break
    await items.aclose()
    cancel = await asyncio.wait_for(cancels.get(), 5)
    assert cancel.request_id == "leaver"


async def test_a_cold_model_without_a_scheduler_is_a_clear_503(tmp_path: Path) -> None:
    server = EmbeddedNats("127.0.0.1", -1, tmp_path)  # a bus of its own: no scheduler on it
    nc = await nats.connect(await asyncio.to_thread(server.start))
    fleet = fleet_with_ready_model()
    settings = GatewaySettings(keepalive_interval_s=0.05, scheduler_grace_s=0.5)
    cold = request("cold")
    cold.model = "not-loaded"
    try:
        _, failed = await until_failed(Inference(nc, fleet, settings).stream(cold))
    finally:
        await nc.close()
        server.stop()
    error = ApiError.from_wire(failed)
    assert (error.status, error.code) == (503, "no_scheduler")
    assert "no scheduler is running" in error.message


async def test_a_neuron_late_with_its_heartbeats_is_asked_before_a_cold_load(
    bus: Client,
) -> None:
    """Five intervals late (a loaded machine sends or reads them late): not gone, so the
    request goes to it at once, and a refusal there is a refusal before any header."""
    await scripted_neuron(bus, answers)
    late = fleet_with_ready_model(interval_s=1.0, age_s=5.0)
    assert late.live(time.monotonic()) == []
    settings = GatewaySettings(keepalive_interval_s=0.05, stream_idle_timeout_s=0.3)
    items = [i async for i in Inference(bus, late, settings).stream(request("late"))]
    assert [type(i).__name__ for i in items] == ["Accepted", "Delta", "Done"]  # no WAITING


async def test_a_late_neuron_that_does_not_answer_leaves_the_model_to_a_cold_load(
    tmp_path: Path,
) -> None:
    server = EmbeddedNats("127.0.0.1", -1, tmp_path)  # no neuron and no scheduler on it
    nc = await nats.connect(await asyncio.to_thread(server.start))
    late = fleet_with_ready_model(interval_s=1.0, age_s=5.0)
    settings = GatewaySettings(keepalive_interval_s=0.05, scheduler_grace_s=0.5)
    try:
        _, failed = await until_failed(Inference(nc, late, settings).stream(request("dead")))
    finally:
        await nc.close()
        server.stop()
    assert failed.code == "no_scheduler"  # it went on to ask for a load


async def test_a_neuron_at_capacity_becomes_429_with_retry_after(bus: Client) -> None:
    async def on_infer(msg) -> None:
        full = WireError(code="overloaded", message="model 'm' is at capacity")
        await msg.respond(codec.encode(InferReply(accepted=False, error=full)))

    await bus.subscribe(subjects.infer(NODE), cb=on_infer)
    _, failed = await until_failed(inference(bus).stream(request("full")))
    error = ApiError.from_wire(failed)  # as the HTTP edge answers it
    assert (error.status, error.code, error.retry_after) == (429, "overloaded", 1)
    assert error.headers() == {"Retry-After": "1"}
    assert error.openai_body()["error"]["type"] == "rate_limit_error"


async def silent(bus: Client, req: InferRequest) -> None:
    return None


async def answers(bus: Client, req: InferRequest) -> None:
    await send(bus, req, Delta(seq=0, text="from b", tokens=2),
               Done(seq=1, finish_reason="stop", usage=Usage(completion_tokens=2)))  # fmt: skip


async def test_a_neuron_lost_before_the_first_token_hands_over_to_another(bus: Client) -> None:
    await scripted_neuron(bus, silent, node="a")  # least busy by name: tried first
    await scripted_neuron(bus, answers, node="b")
    items = [i async for i in inference(bus, "a", "b").stream(request("moved")) if i is not WAITING]
    assert [type(i).__name__ for i in items] == ["Accepted", "Delta", "Done"]
    assert items[1].text == "from b"


async def test_a_retryable_failure_before_the_first_token_hands_over_too(bus: Client) -> None:
    async def unloading(bus: Client, req: InferRequest) -> None:
        gone = WireError(code="unloading", message="model is being unloaded")
        await send(bus, req, Failed(seq=0, error=gone))

    await scripted_neuron(bus, unloading, node="a")
    await scripted_neuron(bus, answers, node="b")
    items = [i async for i in inference(bus, "a", "b").stream(request("unl")) if i is not WAITING]
    assert [type(i).__name__ for i in items] == ["Accepted", "Delta", "Done"]


async def test_a_neuron_lost_mid_answer_is_a_failure_not_a_replay(bus: Client) -> None:
    async def half(bus: Client, req: InferRequest) -> None:
        await send(bus, req, Delta(seq=0, text="half", tokens=1))

    await scripted_neuron(bus, half, node="a")
    await scripted_neuron(bus, answers, node="b")
    seen, failed = await until_failed(inference(bus, "a", "b").stream(request("half")))
    assert failed.code == "stream_timeout"
    assert [i.text for i in seen if isinstance(i, Delta)] == ["half"]
