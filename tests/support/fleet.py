"""A fleet on one real nats-server inside the test's event loop: several neurons (real
llama.cpp on tiny GGUFs) and schedulers, each startable and stoppable on its own, plus a
recorder of every event on the bus so tests can wait for what happened."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats
from nats.aio.client import Client

from cortex_core.config import Settings
from cortex_core.nats_server import EmbeddedNats
from cortex_neuron.main import run_neuron
from cortex_scheduler.main import run_scheduler
from cortex_wire import codec, subjects
from cortex_wire.messages import EnsureModel, EnsureReply, ModelEvent, SchedulerEvent
from tests.conftest import write_catalogue


@dataclass
class Service:
    name: str
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def shutdown(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)


@dataclass
class Fleet:
    nats_url: str
    nc: Client
    folder: Path
    events: list[SchedulerEvent | ModelEvent] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def settings(self, **sections: Any) -> Settings:
        raw: dict[str, Any] = {
            "nats": {"url": self.nats_url},
            "neuron": {
                "heartbeat_interval_s": 0.2,
                "keepalive_interval_s": 0.2,
                "metrics_listen": "",
            },
            "scheduler": {
                "tick_s": 0.2,
                "lease_ttl_s": 1.0,
                "ensure_wait_s": 1.0,
                "warmup_s": 0.5,
                "metrics_listen": "",
            },
        }
        for name, values in sections.items():
            raw.setdefault(name, {}).update(values)
        return msgspec.convert(raw, Settings)

    async def start_neuron(
        self,
        name: str,
        budget_mb: int,
        models: list[dict[str, Any]],
        aliases: dict[str, str] | None = None,
    ) -> Service:
        catalogue = write_catalogue(self.folder / f"{name}-models.toml", models, aliases)
        settings = self.settings(
            neuron={"name": name, "models": str(catalogue), "memory_budget_mb": budget_mb}
        )
        beats = await self.nc.subscribe(subjects.heartbeat(name))
        await self.nc.flush()  # subscribed before the neuron can send its first heartbeat
        service = self._start(name, run_neuron, settings)
        try:
            await beats.next_msg(timeout=10)
        finally:
            await beats.unsubscribe()
        return service

    async def start_scheduler(
        self, name: str = "scheduler", lead: bool = True, **sections: Any
    ) -> Service:
        """Start a scheduler; with `lead`, return once it has become the leader."""
        elected = len(self.scheduler_events("leader_elected"))
        service = self._start(name, run_scheduler, self.settings(**sections))
        if lead:
            await self.wait_for(lambda e: len(self.scheduler_events("leader_elected")) > elected)
        return service

    def _start(self, name: str, runner: Callable[..., Any], settings: Settings) -> Service:
        stop = asyncio.Event()
        service = Service(name, stop, asyncio.create_task(runner(settings, stop)))
        self.services.append(service)
        return service

    async def _record(self, msg: Any) -> None:
        kind = SchedulerEvent if msg.subject.startswith("cortex.event.scheduler.") else ModelEvent
        event = codec.decode(msg.data, kind)
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[Any], bool], timeout: float = 30) -> Any:
        """The first recorded event matching `predicate` (waiting for it if need be)."""

        async def found() -> Any:
            async with self._changed:
                while True:
                    match = next((e for e in self.events if predicate(e)), None)
                    if match is not None:
                        return match
                    await self._changed.wait()

        return await asyncio.wait_for(found(), timeout)

    async def next_event(self, timeout: float) -> None:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except TimeoutError:
                pass

    def scheduler_events(self, kind: str, model: str | None = None) -> list[SchedulerEvent]:
        return [
            e
            for e in self.events
            if isinstance(e, SchedulerEvent)
            and e.kind == kind
            and (model is None or e.model == model)
        ]

    def model_events(self, model: str, state: str) -> list[ModelEvent]:
        return [
            e
            for e in self.events
            if isinstance(e, ModelEvent) and e.model == model and e.state == state
        ]

    async def ask(
        self, subject: str, message: Any, reply_type: type[Any], timeout: float = 30
    ) -> Any:
        raw = await self.nc.request(subject, codec.encode(message), timeout=timeout)
        return codec.decode(raw.data, reply_type)

    async def ensure(self, model: str, node: str = "", timeout: float = 60) -> EnsureReply:
        """What a gateway does: ask until the model is ready or has failed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                reply: EnsureReply = await self.ask(
                    subjects.SCHED_ENSURE,
                    EnsureModel(model=model, node=node),
                    EnsureReply,
                    timeout=5,
                )
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                # No leader at this instant (failover): ask again once something happens.
                await self.next_event(timeout=max(0.0, deadline - loop.time()))
                continue
            if not reply.loading:
                return reply
        raise TimeoutError(f"{model} not ready within {timeout}s")


@asynccontextmanager
async def running_fleet(folder: Path) -> AsyncIterator[Fleet]:
    server = EmbeddedNats("127.0.0.1", -1, folder / "nats")
    url = await asyncio.to_thread(server.start)
    nc = await nats.connect(url)
    fleet = Fleet(nats_url=url, nc=nc, folder=folder)
    await nc.subscribe("cortex.event.>", cb=fleet._record)
    try:
        yield fleet
    finally:
        for service in reversed(fleet.services):
            if not service.task.done():
                await service.shutdown()
        await nc.close()
        await asyncio.to_thread(server.stop)
