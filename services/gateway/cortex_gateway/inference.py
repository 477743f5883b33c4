"""The gateway's side of the bus: route a request to a neuron and follow its stream.

Fast path: a model ready somewhere goes to the least-busy ready replica, decided locally
from heartbeats. Cold path: ask the scheduler to make it ready, yielding `WAITING` while it
loads so the HTTP layer can keep the client's connection alive. A gap in the frames'
sequence numbers or silence past the idle deadline is a failure, never a hang.

Failures are values here: a stream ends with a `Failed` item, a request/reply returns a
`Refused`; only the HTTP edge turns them into errors a client sees (from the outcome table).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict, deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Collection
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Final, TypeAlias, TypeVar

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from cortex_core.config import GatewaySettings
from cortex_core.fleet import (
    LATE_BEATS,
    MISSED_BEATS,
    FleetState,
    NeuronView,
    best_replica,
    counting_own,
    least_busy,
)
from cortex_core.scheduler_client import SchedulerClient
from cortex_gateway.recent_routes import RecentRoutes
from cortex_wire import codec, subjects
from cortex_wire.messages import (
    Cancel,
    Delta,
    Done,
    EmbedReply,
    EmbedRequest,
    EnsureModel,
    Failed,
    Frame,
    InferReply,
    InferRequest,
    KeepAlive,
    LoadedModel,
    ReasoningDelta,
    TokenCount,
    ToolCallBlock,
    ToolCallFrame,
    VocabReply,
    VocabRequest,
    WireError,
)
from cortex_wire.outcomes import Code, outcome
from cortex_wire.prefixes import prefix_digests
from cortex_wire.verdicts import Admitted, Ready, Refused, admission, refusal

log = structlog.get_logger("gateway.inference")


class _Waiting:
    def __repr__(self) -> str:
        return "WAITING"


WAITING: Final = _Waiting()


@dataclass(frozen=True)
class Accepted:
    """A neuron took the request (always the first item before any frame)."""

    node: str
    reasoning_markers: list[str]
    tool_call_markers: list[str] = field(default_factory=list)
    # The request waited for a model load (seconds spent on it).
    cold_start: bool = False
    load_s: float = 0.0
    # The prompt's length in tokens, as the neuron measured it (0: it did not say).
    prompt_tokens: int = 0


@dataclass(frozen=True)
class Routed:
    node: str
    cold_start: bool = False
    load_s: float = 0.0
    late: bool = False  # to a neuron whose heartbeats are late (fleet.LATE_BEATS)


StreamItem: TypeAlias = Accepted | Frame | _Waiting
ACCEPT_TIMEOUT_S = 5.0
# A neuron's reply that may carry an error (TokenCount, EmbedReply).
Answer = TypeVar("Answer", TokenCount, EmbedReply, VocabReply)
# An embedding request is answered whole: many inputs on a busy model take a while.
EMBED_TIMEOUT_S = 120.0
# One ensure round trip; the scheduler answers "still loading" well within it.


class ClientTooSlow(Exception):
    """The client stopped taking its stream: its frames piled up past the limits."""


class FrameInbox:
    """A stream subject's messages, handed from the NATS callback to the request's reader.

    `Subscription.next_msg(timeout)` runs a wait_for (a new task) per message, which at
    thousands of frames a second was a visible share of the gateway's CPU; here a reader
    waits only when the inbox is empty.

    The inbox is bounded: a client that stops reading leaves its reader blocked in an HTTP
    write, so frames pile up here. Past `max_frames`, or with a frame waiting longer than
    `stall_s`, the inbox gives up: it drops what it holds, calls `on_stall` once (which
    cancels the generation), and its reader gets ClientTooSlow if it ever comes back.
    """

    def __init__(
        self,
        max_frames: int = 4096,
        stall_s: float = 30.0,
        on_stall: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._messages: deque[tuple[float, Msg]] = deque()
        self._arrived = asyncio.Event()
        self._max_frames = max_frames
        self._stall_s = stall_s
        self._on_stall = on_stall
        self.stalled = False
        # When the last message arrived: the neuron's silence counts from here, not from
        # when the reader (perhaps held up writing to a slow client) last took one.
        self.heard_at = time.monotonic()

    async def put(self, msg: Msg) -> None:
        if self.stalled:
            return
        now = self.heard_at = time.monotonic()
        self._messages.append((now, msg))
        self._arrived.set()
        oldest = self._messages[0][0]
        if len(self._messages) > self._max_frames or now - oldest > self._stall_s:
            self.stalled = True
            self._messages.clear()
            if self._on_stall is not None:
                await self._on_stall()

    async def get(self, timeout: float) -> Msg | None:
        """The next message, or None after `timeout` seconds without one."""
        if self.stalled:
            raise ClientTooSlow
        if not self._messages:
            self._arrived.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._arrived.wait()
            except TimeoutError:
                return None
            if self.stalled:
                raise ClientTooSlow
        return self._messages.popleft()[1]


# A request may run on this many neurons in turn while none has produced a token.
ATTEMPTS = 2


def _failed(code: Code, message: str) -> Failed:
    """A failure the gateway saw itself (no neuron numbered it)."""
    return Failed(seq=-1, error=WireError(code=code, message=message))


class Inference:
    def __init__(self, nc: Client, fleet: FleetState, settings: GatewaySettings) -> None:
        self.nc = nc
        self.fleet = fleet
        self.settings = settings
        self.scheduler = SchedulerClient(nc, settings.scheduler_grace_s)
        self.following = 0  # streams being followed right now
        self.recent = RecentRoutes()
        # Streams this gateway runs, by model and node: routing counts them at once, where
        # heartbeats tell only an interval later.
        self.in_flight: defaultdict[str, Counter[str]] = defaultdict(Counter)

    async def _ensure(self, model: str, request_id: str) -> Ready | Refused:
        """Ask the scheduler to make `model` ready: where it is, or why it is not."""
        ask = EnsureModel(model=model, request_id=request_id)
        return await self.scheduler.ensure(ask, self.settings.load_timeout_s)

    async def _route(
        self,
        model: str,
        request_id: str,
        cold: bool,
        avoid: Collection[str] = (),
        digests: list[str] | None = None,
    ) -> AsyncIterator[Routed | Refused | _Waiting]:
        """Yield WAITING while a cold model loads, then where the request goes (a ready
        replica not in `avoid`: the one whose cache holds the longest prefix of the
        conversation, `digests`, unless it is much busier), or why it cannot go anywhere."""
        replicas = self._replicas(model, avoid)
        late = not replicas
        if late:  # before a cold load: a neuron late with its heartbeats may well be there
            replicas = self._replicas(model, avoid, LATE_BEATS)
        by_prefix = digests if digests and self.settings.route_by_prefix else []
        node = None if cold else best_replica(replicas, by_prefix, self.recent)
        if node is not None:
            yield Routed(node, late=late)
            return
        log.info("cold_start", model=model, request_id=request_id)
        started = time.perf_counter()
        ensure = asyncio.create_task(self._ensure(model, request_id))
        try:
            while not ensure.done():
                await asyncio.wait({ensure}, timeout=self.settings.keepalive_interval_s)
                if not ensure.done():
                    yield WAITING
            ready = ensure.result()
            if isinstance(ready, Refused):
                yield ready
            else:
                yield Routed(ready.node, cold_start=True, load_s=time.perf_counter() - started)
        finally:
            ensure.cancel()

    async def count_tokens(self, request: InferRequest) -> int | Refused:
        """The prompt's length with the model's own tokenizer and template (loads it if cold)."""
        answer = await self._ask_ready(
            request.model, request.request_id, subjects.tokenize, request, TokenCount,
            ACCEPT_TIMEOUT_S,
        )  # fmt: skip
        return answer if isinstance(answer, Refused) else answer[1].tokens

    async def vocab(self, request: VocabRequest) -> VocabReply | Refused:
        """The model's own tokenizer at work on a neuron where it is ready (loads it if cold)."""
        answer = await self._ask_ready(
            request.model, request.request_id, subjects.vocab, request, VocabReply,
            ACCEPT_TIMEOUT_S,
        )  # fmt: skip
        return answer if isinstance(answer, Refused) else answer[1]

    async def embed(self, request: EmbedRequest) -> tuple[str, EmbedReply] | Refused:
        """Vectors from a neuron where the model is ready (loading it if cold)."""
        return await self._ask_ready(
            request.model, request.request_id, subjects.embed, request, EmbedReply,
            EMBED_TIMEOUT_S,
        )  # fmt: skip

    async def _ask_ready(
        self,
        model: str,
        request_id: str,
        subject: Callable[[str], str],
        request: object,
        reply_type: type[Answer],
        timeout: float,
    ) -> tuple[str, Answer] | Refused:
        """One request/reply with a neuron where `model` is ready (loading it if cold):
        the node and its reply, or why there is none (the reply's own error included)."""
        node = least_busy(self.fleet.ready_replicas(model, time.monotonic()))
        if node is None:
            ready = await self._ensure(model, request_id)
            if isinstance(ready, Refused):
                return ready
            node = ready.node
        payload = self._payload(request)
        if isinstance(payload, Refused):
            return payload
        try:
            raw = await self.nc.request(subject(node), payload, timeout=timeout)
        except (NoRespondersError, NatsTimeout):
            return Refused.of(Code.NEURON_UNAVAILABLE, f"neuron {node!r} did not answer")
        reply = codec.decode(raw.data, reply_type)
        refused = refusal(True, reply.error)
        return (node, reply) if refused is None else refused

    async def _submit(self, node: str, request: InferRequest) -> tuple[Admitted | Refused, int]:
        """The neuron's answer, and the prompt's length in tokens it measured (0: unsaid)."""
        payload = self._payload(request)
        if isinstance(payload, Refused):
            return payload, 0
        try:
            raw = await self.nc.request(subjects.infer(node), payload, timeout=ACCEPT_TIMEOUT_S)
        except (NoRespondersError, NatsTimeout):
            refused = Refused.of(
                Code.NEURON_UNAVAILABLE, f"neuron {node!r} did not accept the request"
            )
            return refused, 0
        reply = codec.decode(raw.data, InferReply)
        return admission(reply), reply.prompt_tokens

    def _payload(self, request: object) -> bytes | Refused:
        """`request` as the bus carries it, or refused where it is larger than the bus's
        server takes (its max_payload)."""
        payload = codec.encode(request)
        limit = self.nc.max_payload
        if limit and len(payload) > limit:
            return Refused.of(
                Code.REQUEST_TOO_LARGE,
                f"the request is {len(payload)} bytes on the bus, which carries at most "
                f"{limit} (nats-server's max_payload): send less, or raise max_payload",
            )
        return payload

    async def stream(self, request: InferRequest) -> AsyncGenerator[StreamItem, None]:
        """Run `request` somewhere and yield its frames (and WAITING while nothing happens).

        Ends after a Done or a Failed item (a failure to start, a broken stream: the
        gateway's own failures come as Failed items too, numbered -1). Closing the iterator
        early cancels the request on the neuron. A request whose neuron fails before the
        first token is sent to another ready replica, unseen by the client.
        """
        tried: set[str] = set()
        attempt = request
        for number in range(1, ATTEMPTS + 1):
            started = False  # has anything of the answer reached the client?
            failure: Failed | None = None
            async with aclosing(self._attempt(attempt, tried, announce=number == 1)) as items:
                async for item in items:
                    if isinstance(item, Failed) and not started:
                        failure = item  # perhaps retried below
                        break
                    started = started or isinstance(
                        item, Delta | ReasoningDelta | ToolCallBlock | ToolCallFrame
                    )
                    yield item
            if failure is None:
                return
            if (
                number == ATTEMPTS
                or not outcome(failure.error.code).retry_elsewhere  # the request's own failure
                or not self._replicas(request.model, tried)
            ):
                yield failure
                return
            log.warning(
                "request_retried", request_id=request.request_id, model=request.model,
                failed_on=sorted(tried), reason=failure.error.message,
            )  # fmt: skip
            request_id = f"{request.request_id}-retry{number}"
            attempt = msgspec.structs.replace(
                request, request_id=request_id, stream_subject=subjects.stream(request_id)
            )

    def _replicas(
        self, model: str, avoid: Collection[str], beats: int = MISSED_BEATS
    ) -> list[tuple[NeuronView, LoadedModel]]:
        """The ready replicas of `model` on nodes not in `avoid` (heard from within
        `beats` heartbeat intervals), loaded with at least the streams this gateway runs
        there."""
        replicas = self.fleet.ready_replicas(model, time.monotonic(), beats)
        mine = counting_own(replicas, self.in_flight[model])
        return [(view, loaded) for view, loaded in mine if view.node not in avoid]

    async def _attempt(
        self, request: InferRequest, tried: set[str], announce: bool
    ) -> AsyncGenerator[StreamItem, None]:
        """One try at `request` on one neuron (not one in `tried`, to which it is added)."""

        async def cancel_for_stalled_client() -> None:
            log.warning(
                "client_too_slow", request_id=request.request_id,
                stall_s=self.settings.client_stall_timeout_s,
            )  # fmt: skip
            cancel = Cancel(request_id=request.request_id, reason="client stopped reading")
            await self.nc.publish(subjects.CANCEL, codec.encode(cancel))

        frames = FrameInbox(
            stall_s=self.settings.client_stall_timeout_s, on_stall=cancel_for_stalled_client
        )
        sub = await self.nc.subscribe(
            request.stream_subject, cb=frames.put, pending_msgs_limit=65536
        )
        finished = False
        self.following += 1
        counts = self.in_flight[request.model]
        counted_on = ""  # the node this stream is counted on, once routed
        try:
            admitted: Admitted | Refused = Refused.of(
                Code.MODEL_NOT_READY, f"model {request.model!r} is not ready anywhere"
            )
            routed = Routed("")
            prompt_tokens = 0
            digests = prefix_digests(request)
            for cold in (False, True):
                route = self._route(request.model, request.request_id, cold, tried, digests)
                async for step in route:
                    if isinstance(step, Refused):
                        yield Failed(seq=-1, error=step.error)
                        return
                    if isinstance(step, _Waiting):
                        yield WAITING
                    else:
                        routed = step
                node = routed.node
                tried.add(node)
                if counted_on:
                    counts[counted_on] -= 1  # routed again (the model was gone): moved
                counted_on = node
                counts[node] += 1
                admitted, prompt_tokens = await self._submit(node, request)
                # Refused as not ready: the model went away between a heartbeat and our
                # request, so load it again; so too where a late neuron did not answer.
                if not isinstance(admitted, Refused):
                    break
                late = routed.late and admitted.code == Code.NEURON_UNAVAILABLE
                if admitted.code != Code.MODEL_NOT_READY and not late:
                    break
            if isinstance(admitted, Refused):
                yield Failed(seq=-1, error=admitted.error)
                return
            # The neuron has it from now on: its silence counts from here, not from before
            # a cold load (which may take longer than the idle limit).
            frames.heard_at = max(frames.heard_at, time.monotonic())
            log.info(
                "request_routed", request_id=request.request_id, model=request.model, node=node
            )
            if digests:
                self.recent.note(digests[-1], node)
            if announce:
                yield Accepted(
                    node=node,
                    reasoning_markers=admitted.reasoning_markers,
                    tool_call_markers=admitted.tool_call_markers,
                    cold_start=routed.cold_start,
                    load_s=routed.load_s,
                    prompt_tokens=prompt_tokens,
                )
            async for item in self._frames(frames, request.request_id, node):
                if isinstance(item, Done | Failed) and item.seq >= 0:
                    finished = True  # the neuron is done with it: nothing to cancel
                yield item
        finally:
            if not finished:
                cancel = Cancel(request_id=request.request_id)
                await self.nc.publish(subjects.CANCEL, codec.encode(cancel))
            self.following -= 1
            if counted_on:
                counts[counted_on] -= 1
            await sub.unsubscribe()

    async def _frames(
        self, frames: FrameInbox, request_id: str, node: str
    ) -> AsyncIterator[StreamItem]:
        tick = self.settings.keepalive_interval_s
        limit = self.settings.stream_idle_timeout_s
        expected = 0
        while True:
            silent = time.monotonic() - frames.heard_at
            try:
                msg = await frames.get(min(tick, max(limit - silent, 0.0)))
            except ClientTooSlow:
                yield _failed(Code.CLIENT_TOO_SLOW, "the client stopped reading its stream")
                return
            if msg is None:
                silent = time.monotonic() - frames.heard_at
                if silent >= limit:
                    # Neurons send a frame at least every keepalive interval: this one is
                    # gone (killed, partitioned) or stuck.
                    yield _failed(Code.STREAM_TIMEOUT, f"the neuron went silent for {silent:.1f}s")
                    return
                yield WAITING
                continue
            try:
                frame = codec.decode_frame(msg.data)
            except (msgspec.DecodeError, msgspec.ValidationError) as error:
                yield _failed(Code.BAD_FRAME, f"bad frame from neuron: {error}")
                return
            self.fleet.heard_from(node, frames.heard_at)
            if frame.seq != expected:
                yield _failed(
                    Code.STREAM_GAP,
                    f"stream broken: frame {frame.seq} arrived, {expected} expected",
                )
                return
            expected += 1
            if isinstance(frame, KeepAlive):
                yield WAITING
                continue
            yield frame
            if isinstance(frame, Done | Failed):
                log.debug("stream_finished", request_id=request_id, frames=expected)
                return
