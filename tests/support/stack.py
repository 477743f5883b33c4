"""The whole stack (scheduler, neuron, gateway) in one background thread of the test process,
on a real nats-server and real llama.cpp, so sync SDK clients can talk to it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import msgspec
import openai

from cortex_core.config import Settings
from cortex_gateway.service import run_gateway
from cortex_neuron.main import run_neuron
from cortex_scheduler.main import run_scheduler


@dataclass
class RunningStack:
    base_url: str
    metrics_url: str
    nats_url: str
    settings: Settings

    def openai(self) -> openai.OpenAI:
        """The official openai client on this stack (no retries: a test sees each answer)."""
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key="x", max_retries=0)

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.base_url, api_key="x", max_retries=0)


def stack_settings(
    nats_url: str, models: Path, node: str = "test-neuron", **sections: Any
) -> Settings:
    raw: dict[str, Any] = {
        "nats": {"url": nats_url},
        "gateway": {
            "listen": "127.0.0.1:0",
            "metrics_listen": "127.0.0.1:0",
            "keepalive_interval_s": 0.5,
        },
        "scheduler": {"warmup_s": 0.3, "tick_s": 0.2, "lease_ttl_s": 1.0, "metrics_listen": ""},
        "neuron": {
            "name": node,
            "models": str(models),
            "heartbeat_interval_s": 0.5,
            "memory_budget_mb": 4096,
            "metrics_listen": "",
        },
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return msgspec.convert(raw, Settings)


Runner = Callable[[Settings, asyncio.Event], Coroutine[Any, Any, None]]


@contextmanager
def _serving(
    settings: Settings, others: Sequence[Runner], timeout: float
) -> Iterator[dict[str, int]]:
    """A gateway and `others` (the scheduler, a neuron) on one event loop in a thread of
    their own until the block ends: the gateway's ports (`http`, `metrics`)."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ports: dict[str, int] = {}
    bound = threading.Event()
    failure: list[BaseException] = []

    def listening(http_port: int, metrics_port: int) -> None:
        ports.update(http=http_port, metrics=metrics_port)
        bound.set()

    async def main() -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for run in others:
                    group.create_task(run(settings, stop))
                group.create_task(run_gateway(settings, stop, listening))
        except BaseException as error:
            failure.append(error)
            bound.set()
            raise

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        if not bound.wait(timeout) or failure:
            raise RuntimeError(f"stack did not start: {failure!r}")
        yield ports
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError("stack did not stop")
        loop.close()


@contextmanager
def running_stack(settings: Settings, timeout: float = 60.0) -> Iterator[RunningStack]:
    with _serving(settings, (run_scheduler, run_neuron), timeout) as ports:
        base = f"http://127.0.0.1:{ports['http']}"
        # Readiness: the gateway long-polls until the neuron's heartbeats arrive.
        node = settings.neuron_name()
        health = httpx.get(
            f"{base}/health",
            params={"neuron": node, "scheduler": "true", "wait": timeout},
            timeout=timeout + 5,
        )
        health.raise_for_status()
        yield RunningStack(
            base_url=base,
            metrics_url=f"http://127.0.0.1:{ports['metrics']}/metrics",
            nats_url=settings.nats.url,
            settings=settings,
        )


@contextmanager
def running_gateway(settings: Settings, timeout: float = 60.0) -> Iterator[str]:
    """One more gateway replica on `settings`' bus (its own port): its base URL."""
    with _serving(settings, (), timeout) as ports:
        base = f"http://127.0.0.1:{ports['http']}"
        ready = {"neuron": settings.neuron_name(), "wait": timeout}  # it has seen the fleet
        httpx.get(f"{base}/health", params=ready, timeout=timeout + 5).raise_for_status()
        yield base


@contextmanager
def stack_on_own_bus(
    folder: Path,
    models: list[dict[str, Any]],
    node: str = "test-neuron",
    aliases: dict[str, str] | None = None,
    **sections: Any,
) -> Iterator[RunningStack]:
    """A whole stack on a nats-server of its own, so nothing else acts on its fleet."""
    from cortex_core.nats_server import EmbeddedNats
    from tests.conftest import write_catalogue

    bus = EmbeddedNats("127.0.0.1", -1, folder / "nats")
    bus.start()
    try:
        catalogue = write_catalogue(folder / "models.toml", models, aliases)
        with running_stack(stack_settings(bus.url, catalogue, node=node, **sections)) as running:
            yield running
    finally:
        bus.stop()
