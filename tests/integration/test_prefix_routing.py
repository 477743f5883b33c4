"""Two replicas of one model on two neurons: a conversation's next turn goes to the replica
whose cache holds its start (named by message-prefix digests in heartbeats), not to
whichever sorts first; a holder that is busy hands the turn to the other replica."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from pathlib import Path

import msgspec
import pytest

from cortex_core.config import GatewaySettings
from cortex_core.fleet import FleetState
from cortex_gateway.inference import Accepted, Inference
from cortex_wire import codec, subjects
from cortex_wire.messages import (
    ChatMessage,
    Delta,
    Done,
    Heartbeat,
    InferRequest,
    LoadedModel,
    SamplingParams,
)
from cortex_wire.prefixes import prefix_digests
from tests.support.fleet import Fleet, running_fleet

# One slot each, so one request makes a replica busy.
TALKER = {"id": "talker", "n_ctx": 4096, "parallel": 1,
          "script": {"reply": "tick tock ", "tokens_per_s": 200, "repeat": True}}  # fmt: skip


class Gateway:
    """A gateway's routing view: the fleet from heartbeats, and Inference over it."""

    def __init__(self, fleet: Fleet, blind: bool = False) -> None:
        self.blind = blind  # heartbeats lose their prefixes (as if they lagged behind)
        self.fleet = FleetState()
        self.inference = Inference(fleet.nc, self.fleet, GatewaySettings())
        self._changed = asyncio.Condition()

    async def on_heartbeat(self, msg: object) -> None:
        beat = codec.decode(msg.data, Heartbeat)  # type: ignore[attr-defined]
        if self.blind:
            beat.models = [msgspec.structs.replace(m, prefixes=[]) for m in beat.models]
        async with self._changed:
            self.fleet.observe(beat, time.monotonic())
            self._changed.notify_all()

    async def until(self, holds: Callable[[], bool], timeout: float = 20) -> None:
        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(holds)

        await asyncio.wait_for(wait(), timeout)

    def model(self, node: str) -> LoadedModel | None:
        view = self.fleet.neurons.get(node)
        return view.model("talker") if view else None

    def holds(self, node: str, request: InferRequest) -> bool:
        """The gateway knows `node` holds `request`'s conversation."""
        digest = prefix_digests(request)[-1]
        model = self.model(node)
        listed = model is not None and digest in model.prefixes
        return listed or self.inference.recent.get(digest) == node

    def busy(self, node: str) -> int:
        model = self.model(node)
        return model.busy if model is not None else 0


def turn(conversation: str, *said: str, max_tokens: int = 2) -> InferRequest:
    roles = ["user", "assistant"]
    messages = [ChatMessage(role="system", content=f"You are {conversation}.")]
    messages += [ChatMessage(role=roles[i % 2], content=text) for i, text in enumerate(said)]
    return InferRequest(
        request_id=f"{conversation}-{len(said)}", model="talker",
        stream_subject=subjects.stream(f"{conversation}-{len(said)}"), messages=messages,
        params=SamplingParams(max_tokens=max_tokens),
    )  # fmt: skip


async def run(gateway: Gateway, request: InferRequest) -> str:
    """Run `request` to its end; the node that served it."""
    node = ""
    async with aclosing(gateway.inference.stream(request)) as items:
        async for item in items:
            if isinstance(item, Accepted):
                node = item.node
            if isinstance(item, Done):
                return node
    raise AssertionError(f"{request.request_id} did not finish")


@asynccontextmanager
async def busy_on(gateway: Gateway, node: str, name: str) -> AsyncIterator[None]:
    """A long generation on `node` (the other replica is avoided), until closed."""
    request = turn(name, "talk", max_tokens=100_000)
    other = {"a": "b", "b": "a"}[node]
    items = gateway.inference._attempt(request, {other}, announce=True)
    async for item in items:
        if isinstance(item, Delta):
            break
    try:
        await gateway.until(lambda: gateway.busy(node) == 1)
        yield
    finally:
        await items.aclose()
        await gateway.until(lambda: gateway.busy(node) == 0)


@pytest.fixture(params=[False, True], ids=["heartbeats", "own-memory"])
async def two_replicas(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Gateway]:
    """Two replicas; the gateway knows where prefixes are from the heartbeats, or (blind to
    them) only from where it sent each conversation itself."""
    async with running_fleet(tmp_path) as fleet:
        await fleet.start_scheduler()
        for node in ("a", "b"):
            await fleet.start_neuron(node, 4096, [TALKER])
            assert (await fleet.ensure("talker", node=node)).ok
        gateway = Gateway(fleet, blind=request.param)
        sub = await fleet.nc.subscribe(subjects.HEARTBEATS, cb=gateway.on_heartbeat)
        await gateway.until(lambda: None not in (gateway.model("a"), gateway.model("b")))
        try:
            yield gateway
        finally:
            await sub.unsubscribe()


async def test_the_next_turn_goes_to_the_replica_holding_its_start(two_replicas: Gateway) -> None:
    gateway = two_replicas
    first = turn("Ann", "hello")
    # With "a" busy, the first turn goes to "b".
    async with busy_on(gateway, "a", "filler"):
        assert await run(gateway, first) == "b"
    # (as the gateway sees it: both replicas idle again, "b" holding the conversation)
    await gateway.until(
        lambda: gateway.holds("b", first) and gateway.busy("a") == gateway.busy("b") == 0
    )
    # Both idle now: least-busy alone would pick "a" (it sorts first); the prefix says "b".
    assert await run(gateway, turn("Ann", "hello", "tick", "and then?")) == "b"
    # A turn of a conversation nobody holds still goes by load.
    assert await run(gateway, turn("Bob", "hi")) == "a"


async def test_a_busy_holder_hands_the_turn_to_another_replica(two_replicas: Gateway) -> None:
    gateway = two_replicas
    first = turn("Cy", "hello")
    assert await run(gateway, first) == "a"  # both idle: "a" sorts first
    await gateway.until(lambda: gateway.holds("a", first) and gateway.busy("b") == 0)
    async with busy_on(gateway, "a", "filler"):
        assert await run(gateway, turn("Cy", "hello", "tick", "more")) == "b"


async def test_requests_arriving_together_spread_before_any_heartbeat_counts_them(
    two_replicas: Gateway,
) -> None:
    """Both replicas are idle in the heartbeats the gateway has; the second of two requests
    sent at once goes to the other replica, because the gateway counts its own streams."""
    gateway = two_replicas
    nodes = await asyncio.gather(run(gateway, turn("Di", "hi")), run(gateway, turn("Ed", "hi")))
    assert sorted(nodes) == ["a", "b"]
