"""The scheduler's shell: heartbeats in, decisions out, every decision an event on the bus.

Only the lease holder decides; a standby keeps its fleet view warm from heartbeats and takes
over when the lease expires. Placement runs under one lock, over a snapshot that includes
loads already commanded, so two decisions never double-book the same memory; a neuron
refuses to unload a model with requests in flight, so a stale snapshot cannot cut one off.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from cortex_core.config import Settings
from cortex_core.fleet import FleetState
from cortex_core.metrics_server import serve_metrics
from cortex_scheduler.durable import LeaderLease, PinStore
from cortex_scheduler.metrics import SchedulerMetrics
from cortex_scheduler.policy import Plan, plan_load
from cortex_scheduler.refusals import (
    not_pinned,
    pinned_against_unload,
    unknown_model,
    unknown_node,
)
from cortex_scheduler.snapshot import neuron_states
from cortex_wire import codec, subjects
from cortex_wire.messages import (
    CandidateView,
    ControlReply,
    EnsureModel,
    EnsureReply,
    EvictionView,
    Explanation,
    FleetStatus,
    Heartbeat,
    LoadModel,
    ModelRef,
    Pin,
    RestartEngine,
    SchedulerEvent,
    SchedulerReply,
    UnloadModel,
    WireError,
)
from cortex_wire.outcomes import Code
from cortex_wire.verdicts import refusal

log = structlog.get_logger("scheduler")
Handler = Callable[[Msg], Coroutine[Any, Any, None]]


def explanation(plan: Plan, already_on: list[str]) -> Explanation:
    return Explanation(
        model=plan.model,
        node=plan.node,
        reason=plan.reason,
        already_on=already_on,
        evictions=[EvictionView(e.node, e.model, e.reason) for e in plan.evictions],
        candidates=[
            CandidateView(
                c.node,
                c.fits_now,
                c.free_mb,
                [EvictionView(e.node, e.model, e.reason) for e in c.evictions],
            )
            for c in plan.candidates
        ],
        rejected=dict(plan.rejected),
    )


class Scheduler:
    def __init__(self, settings: Settings, nc: Client) -> None:
        self.settings = settings
        self.nc = nc
        # Host and pid say which process leads; the suffix tells restarts apart.
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:4]}"
        self.fleet = FleetState(allowed={n.name for n in settings.neurons})
        replicas = settings.nats.kv_replicas
        self.lease = LeaderLease(
            nc.jetstream(), self.instance, settings.scheduler.lease_ttl_s, replicas
        )
        self.pins_store = PinStore(nc.jetstream(), replicas)
        self.pins: list[Pin] = []
        self.active = False
        # node → {model: footprint} for loads commanded and not yet finished.
        self._pending: dict[str, dict[str, int]] = {}
        self._loads: dict[str, asyncio.Task[EnsureReply]] = {}
        self._failures: dict[str, tuple[float, WireError]] = {}
        self._placement = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._subs: list[Subscription] = []
        self._started = time.monotonic()
        self._heard = asyncio.Event()  # set by each neuron heartbeat taken in
        self.log = log.bind(instance=self.instance)
        self.metrics = SchedulerMetrics()

    # --- lifecycle --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        metrics_server = serve_metrics(
            self.settings.scheduler.metrics_listen,
            self.metrics.registry,
            "scheduler.metrics_listen",
        )
        heartbeats = await self.nc.subscribe(subjects.HEARTBEATS, cb=self._on_heartbeat)
        self.log.info("scheduler_started", strategy=self.settings.eviction.strategy)
        tick = self.settings.scheduler.tick_s
        try:
            while not stop.is_set():
                await self._step()
                try:
                    await asyncio.wait_for(stop.wait(), tick)
                except TimeoutError:
                    pass
        finally:
            await heartbeats.unsubscribe()
            await self._step_down()
            if self.active or await self.lease.holder_now() == self.instance:
                await self.lease.release()
            for task in [*self._tasks, *self._loads.values()]:
                task.cancel()
            if metrics_server is not None:
                metrics_server.shutdown()
            self.log.info("scheduler_stopped")

    async def _step(self) -> None:
        """One tick: hold (or try to take) the lease; as leader, keep pins and defrag."""
        try:
            if self.active:
                if not await self.lease.renew():
                    self.log.warning("leadership_lost")
                    await self._step_down()
                    return
            elif self._warm() and await self.lease.acquire():
                await self._take_over()
            if self.active:
                await self._keep_pins()
                await self._defrag()
        except Exception as error:  # the bus may be reconnecting: try again next tick
            self.log.warning("scheduler_tick_failed", error=str(error) or type(error).__name__)

    def _warm(self) -> bool:
        return time.monotonic() - self._started >= self.settings.scheduler.warmup_s

    async def _take_over(self) -> None:
        self.active = True
        self.metrics.leader.set(1)
        self.pins = await self.pins_store.all()
        handlers: list[tuple[str, Handler]] = [
            (subjects.SCHED_ENSURE, self._on_ensure),
            (subjects.SCHED_UNLOAD, self._on_unload),
            (subjects.SCHED_PIN, self._on_pin),
            (subjects.SCHED_UNPIN, self._on_unpin),
            (subjects.SCHED_EXPLAIN, self._on_explain),
            (subjects.SCHED_STATUS, self._on_status),
        ]
        for subject, handler in handlers:
            self._subs.append(
                await self.nc.subscribe(subject, queue="scheduler", cb=self._spawner(handler))
            )
        self.log.info("leader_elected", pins=len(self.pins))
        await self.event("leader_elected", node=self.instance, reason=f"{len(self.pins)} pins")

    async def _step_down(self) -> None:
        self.active = False
        self.metrics.leader.set(0)
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs.clear()

    def _spawner(self, handler: Handler) -> Handler:
        """Run each request in its own task: a slow load never holds up the next request."""

        async def spawn(msg: Msg) -> None:
            task = asyncio.create_task(handler(msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return spawn

    async def event(self, kind: str, model: str = "", node: str = "", reason: str = "") -> None:
        payload = SchedulerEvent(kind=kind, at=time.time(), model=model, node=node, reason=reason)
        await self.nc.publish(subjects.scheduler_event(kind), codec.encode(payload))

    # --- fleet state ------------------------------------------------------------------

    async def _on_heartbeat(self, msg: Msg) -> None:
        try:
            heartbeat = codec.decode(msg.data, Heartbeat)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            self.log.warning("bad_heartbeat", subject=msg.subject, error=str(error))
            return
        now = time.monotonic()
        known = heartbeat.node in self.fleet.neurons
        if not self.fleet.observe(heartbeat, now):
            if not known:
                self.log.warning("neuron_not_allowed", node=heartbeat.node)
            return
        self._heard.set()
        if not known:
            self.log.info("neuron_joined", node=heartbeat.node)
            if self.active:
                await self.event("neuron_joined", node=heartbeat.node)
        self.metrics.neurons.set(len(self.fleet.neurons))
        for gone in self.fleet.expire(now):
            self.log.warning("neuron_left", node=gone)
            if self.active:
                await self.event("neuron_left", node=gone, reason="missed 3 heartbeats")

    def snapshot(self) -> list[Any]:
        now = time.monotonic()
        self.fleet.expire(now)
        return neuron_states(self.fleet.live(now), self.pins, self._pending)

    def where(self, model: str, states: tuple[str, ...] = ("ready",)) -> list[str]:
        now = time.monotonic()
        return [v.node for v in self.fleet.live(now) if (m := v.model(model)) and m.state in states]

    # --- ensure: make a model ready (single flight, answered within ensure_wait_s) ----

    async def ensure(self, model: str, node: str = "", wait: float | None = None) -> EnsureReply:
        ready = [n for n in self.where(model) if not node or n == node]
        if ready:
            return EnsureReply(ok=True, node=ready[0])
        stranger = unknown_node(node, self.snapshot())
        if stranger is not None:
            return EnsureReply(ok=False, error=stranger)
        failure = self._failures.get(model)
        backoff = self.settings.scheduler.failed_load_backoff_s
        if failure and time.monotonic() - failure[0] < backoff:
            return EnsureReply(ok=False, error=failure[1])
        load = self._loads.get(model)
        if load is None:
            load = asyncio.create_task(self._load(model, node))
            self._loads[model] = load
            load.add_done_callback(lambda _: self._loads.pop(model, None))
        try:
            return await asyncio.wait_for(asyncio.shield(load), wait)
        except TimeoutError:
            return EnsureReply(ok=False, loading=True)

    async def _load(self, model: str, node: str) -> EnsureReply:
        loading_on = self.where(model, ("loading",))
        target = node or (loading_on[0] if loading_on else "")
        if not loading_on or (node and node not in loading_on):
            async with self._placement:
                placed = await self._place(model, node)
            if isinstance(placed, EnsureReply):
                return placed
            target = placed
        return await self._command_load(model, target)

    async def _place(self, model: str, node: str) -> str | EnsureReply:
        """Decide where `model` goes and make room there; return the node (or the failure)."""
        await self._hear_a_neuron()
        for _ in range(3):  # an eviction refused (a request arrived meanwhile): plan again
            fleet = self.snapshot()
            plan = plan_load(model, fleet, self.settings.eviction.strategy, node or None)
            if plan.node is None:
                error = unknown_model(model, fleet) or WireError(
                    code=Code.NO_CAPACITY, message=plan.reason
                )
                self.metrics.placements.labels(error.code).inc()
                self.log.warning("placement_failed", model=model, reason=error.message)
                await self.event("placement_failed", model=model, reason=error.message)
                return EnsureReply(ok=False, error=error)
            refused = False
            for eviction in plan.evictions:
                reply = await self._control(eviction.node, UnloadModel(model=eviction.model))
                if not reply.ok:
                    refused = True
                    break
                self.log.info(
                    "model_evicted",
                    model=eviction.model,
                    node=eviction.node,
                    reason=eviction.reason,
                )
                self.metrics.evictions.labels(self.settings.eviction.strategy).inc()
                await self.event(
                    "evicted", model=eviction.model, node=eviction.node, reason=eviction.reason
                )
            if refused:
                continue
            entry = next(s for s in self.snapshot() if s.node == plan.node).entry(model)
            self._pending.setdefault(plan.node, {})[model] = entry.footprint_mb if entry else 0
            self.metrics.placements.labels("placed").inc()
            self.log.info("model_placed", model=model, node=plan.node, reason=plan.reason)
            await self.event("placed", model=model, node=plan.node, reason=plan.reason)
            return plan.node
        message = f"could not make room for {model!r}: evictions kept being refused"
        return EnsureReply(ok=False, error=WireError(code=Code.NO_CAPACITY, message=message))

    async def _hear_a_neuron(self) -> None:
        """With no live neuron in view (a scheduler just started, a bus just back), wait a
        warm-up's time for a heartbeat before deciding that none can hold the model: the
        neurons may simply not have been heard from yet."""
        if self.fleet.live(time.monotonic()):
            return
        self._heard.clear()
        try:
            await asyncio.wait_for(self._heard.wait(), self.settings.scheduler.warmup_s)
        except TimeoutError:
            pass

    async def _command_load(self, model: str, node: str) -> EnsureReply:
        started = time.perf_counter()
        try:
            reply = await self._control(
                node, LoadModel(model=model), self.settings.scheduler.load_timeout_s
            )
        finally:
            self._pending.get(node, {}).pop(model, None)
        refused = refusal(reply.ok, reply.error)
        if refused is not None:
            self._failures[model] = (time.monotonic(), refused.error)
            self.metrics.loads.labels("failed").inc()
            self.log.error("model_load_failed", model=model, node=node, error=refused.message)
            await self.event("load_failed", model=model, node=node, reason=refused.message)
            return EnsureReply(ok=False, node=node, error=refused.error)
        self._failures.pop(model, None)
        self.metrics.loads.labels("ok").inc()
        self.metrics.load_seconds.labels(model).observe(time.perf_counter() - started)
        self.log.info("model_loaded", model=model, node=node)
        await self.event("loaded", model=model, node=node)
        return EnsureReply(ok=True, node=node)

    async def _control(self, node: str, command: Any, timeout: float = 30.0) -> ControlReply:
        try:
            raw = await self.nc.request(
                subjects.control(node), codec.encode(command), timeout=timeout
            )
        except NoRespondersError:
            error = WireError(
                code=Code.NEURON_UNAVAILABLE,
                message=f"neuron {node!r} does not answer",
            )
            return ControlReply(ok=False, error=error)
        except NatsTimeout:
            error = WireError(
                code=Code.LOAD_TIMEOUT,
                message=f"neuron {node!r} did not finish within {timeout:g}s",
            )
            return ControlReply(ok=False, error=error)
        return codec.decode(raw.data, ControlReply)

    # --- pins and defrag (each tick, as leader) ---------------------------------------

    async def _keep_pins(self) -> None:
        """Load every pinned model that is not where its pin says (failures back off)."""
        for pin in self.pins:
            present = self.where(pin.model, ("ready", "loading"))
            if (pin.node in present) if pin.node else present:
                continue
            if pin.model in self._loads or (pin.node and pin.node not in self.fleet.neurons):
                continue  # loading already, or its neuron is away (reloaded when it returns)
            self.log.info("pin_reload", model=pin.model, node=pin.node)
            await self.ensure(pin.model, pin.node, wait=0)

    async def _defrag(self) -> None:
        limit = self.settings.eviction.defrag_after_cycles
        if limit <= 0:
            return
        for view in self.fleet.live(time.monotonic()):
            heartbeat = view.heartbeat
            if heartbeat.cycles < limit or any(m.busy or m.queued for m in heartbeat.models):
                continue
            if self._pending.get(view.node):
                continue
            async with self._placement:
                reply = await self._control(view.node, RestartEngine(), timeout=60)
            reason = f"{heartbeat.cycles} load/unload cycles"
            if reply.ok:
                self.log.info(
                    "engine_restarted", node=view.node, reason=reason, unloaded=reply.models
                )
                await self.event(
                    "defrag", node=view.node, reason=f"{reason}; unloaded {reply.models}"
                )
            # Pinned models come back on the next tick; others load again on demand.

    # --- request handlers -------------------------------------------------------------

    async def _respond(self, msg: Msg, reply: Any) -> None:
        if msg.reply:
            await msg.respond(codec.encode(reply))

    def _decode(self, msg: Msg, kind: type[Any]) -> Any:
        try:
            request = codec.decode(msg.data, kind)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            return WireError(code=Code.BAD_REQUEST, message=str(error))
        if isinstance(request, ModelRef | EnsureModel) and request.model:
            # An operator may name a model by an alias (`cortex unload <alias>`): act on
            # the model it names, as the gateway does for requests.
            request.model = self.fleet.resolve(request.model, time.monotonic())
        return request

    async def _on_ensure(self, msg: Msg) -> None:
        request = self._decode(msg, EnsureModel)
        if isinstance(request, WireError):
            await self._respond(msg, EnsureReply(ok=False, error=request))
            return
        # A load started here logs the id of the request that caused it.
        with structlog.contextvars.bound_contextvars(request_id=request.request_id):
            reply = await self.ensure(
                request.model, request.node, self.settings.scheduler.ensure_wait_s
            )
        await self._respond(msg, msgspec.structs.replace(reply, model=request.model))

    async def _on_unload(self, msg: Msg) -> None:
        ref = self._decode(msg, ModelRef)
        if isinstance(ref, WireError):
            await self._respond(msg, SchedulerReply(ok=False, error=ref))
            return
        stranger = unknown_node(ref.node, self.snapshot())
        if stranger is not None:
            await self._respond(msg, SchedulerReply(ok=False, error=stranger))
            return
        nodes = [
            n
            for n in self.where(ref.model, ("ready", "loading", "failed"))
            if not ref.node or n == ref.node
        ]
        if not nodes:
            unknown = unknown_model(ref.model, self.snapshot())
            if unknown is not None:
                await self._respond(msg, SchedulerReply(ok=False, error=unknown))
                return
            await self._respond(msg, SchedulerReply(ok=True, detail=f"{ref.model!r} is not loaded"))
            return
        pinned = pinned_against_unload(ref.model, nodes, self.pins)
        if pinned is not None:
            # The pin would load it straight back: refuse rather than report a success.
            await self._respond(msg, SchedulerReply(ok=False, error=pinned))
            return
        for node in nodes:
            reply = await self._control(node, UnloadModel(model=ref.model))
            refused = refusal(reply.ok, reply.error)
            if refused is not None:
                await self._respond(msg, SchedulerReply(ok=False, error=refused.error))
                return
            await self.event("unloaded", model=ref.model, node=node, reason="operator request")
        await self._respond(
            msg, SchedulerReply(ok=True, detail=f"unloaded {ref.model!r} from {', '.join(nodes)}")
        )

    async def _on_pin(self, msg: Msg) -> None:
        ref = self._decode(msg, ModelRef)
        if isinstance(ref, WireError):
            await self._respond(msg, SchedulerReply(ok=False, error=ref))
            return
        pin = Pin(model=ref.model, node=ref.node, at=time.time())
        before = [p for p in self.pins if p.model == pin.model]
        # Held in memory while it loads (nothing evicts it meanwhile); stored only once
        # the model could be placed, so a refused pin is not retried every tick.
        self.pins = [p for p in self.pins if p.model != pin.model] + [pin]
        self._failures.pop(pin.model, None)
        reply = await self.ensure(pin.model, pin.node, self.settings.scheduler.ensure_wait_s)
        if reply.error is not None:
            if any(p is pin for p in self.pins):  # (an unpin meanwhile has the last word)
                self.pins = [p for p in self.pins if p is not pin] + before
            reason = reply.error.message
            self.log.warning("pin_refused", model=pin.model, node=pin.node, reason=reason)
            await self._respond(msg, SchedulerReply(ok=False, error=not_pinned(reply.error)))
            return
        if not any(p is pin for p in self.pins):  # unpinned while it loaded: the last word
            detail = f"{pin.model!r} was unpinned while it loaded; not pinned"
            await self._respond(msg, SchedulerReply(ok=True, detail=detail))
            return
        await self.pins_store.put(pin)
        await self.event("pinned", model=pin.model, node=pin.node)
        where = reply.node or "(loading)"
        await self._respond(msg, SchedulerReply(ok=True, detail=f"pinned {pin.model!r} on {where}"))

    async def _on_unpin(self, msg: Msg) -> None:
        ref = self._decode(msg, ModelRef)
        if isinstance(ref, WireError):
            await self._respond(msg, SchedulerReply(ok=False, error=ref))
            return
        pending = any(p.model == ref.model for p in self.pins)  # a pin still loading counts
        existed = await self.pins_store.delete(ref.model) or pending
        self.pins = [p for p in self.pins if p.model != ref.model]
        if existed:
            await self.event("unpinned", model=ref.model)
        detail = f"unpinned {ref.model!r}" if existed else f"{ref.model!r} was not pinned"
        await self._respond(msg, SchedulerReply(ok=True, detail=detail))

    async def _on_explain(self, msg: Msg) -> None:
        ref = self._decode(msg, ModelRef)
        if isinstance(ref, WireError):
            await self._respond(msg, SchedulerReply(ok=False, error=ref))
            return
        unknown = unknown_model(ref.model, self.snapshot())
        if unknown is not None:  # as `cortex load` is told: no neuron serves it at all
            none = Explanation(model=ref.model, node=None, reason=unknown.message, error=unknown)
            await self._respond(msg, none)
            return
        plan = plan_load(
            ref.model, self.snapshot(), self.settings.eviction.strategy, ref.node or None
        )
        await self._respond(msg, explanation(plan, self.where(ref.model, ("ready", "loading"))))

    async def _on_status(self, msg: Msg) -> None:
        status = FleetStatus(
            leader=self.instance,
            strategy=self.settings.eviction.strategy,
            neurons=[v.heartbeat for v in self.fleet.live(time.monotonic())],
            pins=list(self.pins),
        )
        await self._respond(msg, status)
