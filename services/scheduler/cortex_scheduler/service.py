"""The scheduler's shell: heartbeats in, `ensure` requests answered, loads commanded.

One load of a model is in flight at a time: concurrent `ensure` requests for the same cold
model wait on the same load.
"""

from __future__ import annotations

import asyncio
import time

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from cortex_core.config import Settings
from cortex_core.fleet import FleetState
from cortex_scheduler.placement import place
from cortex_wire import codec, subjects
from cortex_wire.messages import (
    ControlReply,
    EnsureModel,
    EnsureReply,
    Heartbeat,
    LoadModel,
    WireError,
)

log = structlog.get_logger("scheduler")


class Scheduler:
    def __init__(self, settings: Settings, nc: Client) -> None:
        self.settings = settings
        self.nc = nc
        self.fleet = FleetState(allowed={n.name for n in settings.neurons})
        self._loads: dict[str, asyncio.Task[EnsureReply]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        subs = [
            await self.nc.subscribe(subjects.HEARTBEATS, cb=self._on_heartbeat),
            await self.nc.subscribe(subjects.SCHED_ENSURE, queue="scheduler", cb=self._on_ensure),
        ]
        log.info("scheduler_started")
        try:
            await stop.wait()
        finally:
            for sub in subs:
                await sub.unsubscribe()
            for task in [*self._tasks, *self._loads.values()]:
                task.cancel()
            log.info("scheduler_stopped")

    async def _on_heartbeat(self, msg: Msg) -> None:
        try:
            heartbeat = codec.decode(msg.data, Heartbeat)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            log.warning("bad_heartbeat", subject=msg.subject, error=str(error))
            return
        known = heartbeat.node in self.fleet.neurons
        if not self.fleet.observe(heartbeat, time.monotonic()):
            log.warning("neuron_not_allowed", node=heartbeat.node)
        elif not known:
            log.info("neuron_joined", node=heartbeat.node)
        for gone in self.fleet.expire(time.monotonic()):
            log.warning("neuron_left", node=gone)

    async def _on_ensure(self, msg: Msg) -> None:
        task = asyncio.create_task(self._ensure(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ensure(self, msg: Msg) -> None:
        try:
            request = codec.decode(msg.data, EnsureModel)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            reply = EnsureReply(ok=False, error=WireError(code="bad_request", message=str(error)))
        else:
            reply = await self.ensure(request.model)
        if msg.reply:
            await msg.respond(codec.encode(reply))

    async def ensure(self, model: str) -> EnsureReply:
        now = time.monotonic()
        self.fleet.expire(now)
        ready = self.fleet.ready_replicas(model, now)
        if ready:
            return EnsureReply(ok=True, node=ready[0][0].node)
        load = self._loads.get(model)
        if load is None:
            load = asyncio.create_task(self._load(model))
            self._loads[model] = load
            load.add_done_callback(lambda _: self._loads.pop(model, None))
        return await asyncio.shield(load)

    async def _load(self, model: str) -> EnsureReply:
        placement = place(model, self.fleet.live(time.monotonic()))
        if placement.node is None:
            log.warning("placement_failed", model=model, reason=placement.reason)
            return EnsureReply(
                ok=False, error=WireError(code="no_capacity", message=placement.reason)
            )
        log.info("model_placed", model=model, node=placement.node, reason=placement.reason)
        timeout = self.settings.scheduler.load_timeout_s
        try:
            raw = await self.nc.request(
                subjects.control(placement.node),
                codec.encode(LoadModel(model=model)),
                timeout=timeout,
            )
        except NoRespondersError:
            message = f"neuron {placement.node!r} does not answer"
            return EnsureReply(
                ok=False,
                error=WireError(code="neuron_unavailable", message=message, retryable=True),
            )
        except NatsTimeout:
            message = f"loading {model!r} on {placement.node!r} took longer than {timeout:g}s"
            return EnsureReply(
                ok=False, error=WireError(code="load_timeout", message=message, retryable=True)
            )
        reply = codec.decode(raw.data, ControlReply)
        if not reply.ok:
            log.error("model_load_failed", model=model, node=placement.node, error=reply.error)
            return EnsureReply(ok=False, node=placement.node, error=reply.error)
        log.info("model_loaded", model=model, node=placement.node)
        return EnsureReply(ok=True, node=placement.node)
