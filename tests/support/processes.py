"""cortex services as separate OS processes on a nats-server of their own, so tests can
kill any of them for real (SIGKILL) or restart the bus, and watch what the rest does."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from cortex_core.nats_server import EmbeddedNats
from cortex_wire import codec, subjects
from cortex_wire.messages import Heartbeat
from tests.conftest import free_port, toml_value, write_catalogue

# Fast enough that faults show within a few seconds; the relations between the timings
# (heartbeat < keep-alive deadlines) are the production ones.
TIMINGS: dict[str, dict[str, Any]] = {
    "neuron": {"heartbeat_interval_s": 0.5, "keepalive_interval_s": 0.5, "metrics_listen": ""},
    "gateway": {"metrics_listen": "", "keepalive_interval_s": 0.5, "heartbeat_interval_s": 0.5},
    "scheduler": {
        "tick_s": 0.2, "lease_ttl_s": 1.0, "ensure_wait_s": 1.0, "warmup_s": 0.5,
        "metrics_listen": "",
    },
}  # fmt: skip


def toml(sections: dict[str, dict[str, Any]]) -> str:
    """A cortex.toml from plain values (strings, numbers, booleans, lists of those)."""
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


@dataclass
class ProcessFleet:
    folder: Path
    nats: EmbeddedNats
    nc: Client
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    heartbeats: dict[str, Heartbeat] = field(default_factory=dict)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    gateway_url: str = ""

    @property
    def nats_url(self) -> str:
        return self.nats.url

    async def spawn(self, name: str, service: str, **sections: dict[str, Any]) -> None:
        merged = {"nats": {"url": self.nats_url}}
        for section in ("neuron", "gateway", "scheduler"):
            merged[section] = {**TIMINGS[section], **sections.get(section, {})}
        for section, values in sections.items():
            merged.setdefault(section, {}).update(values)
        config = self.folder / f"{name}.toml"
        config.write_text(toml(merged))
        log = (self.folder / f"{name}.log").open("a")
        self.processes[name] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cortex_cli.main", service, "--config", str(config),
            stdout=log, stderr=log,
            env={**os.environ, "CORTEX_LOG_FORMAT": "json", "CORTEX_STATE_DIR": str(self.folder)},
        )  # fmt: skip

    async def start_neuron(
        self, name: str, models: list[dict[str, Any]], **sections: dict[str, Any]
    ) -> None:
        catalogue = write_catalogue(self.folder / f"{name}-models.toml", models)
        await self.spawn(
            name,
            "neuron",
            neuron={"name": name, "models": str(catalogue), "memory_budget_mb": 4096},
            **sections,
        )
        await self.wait_for(lambda: name in self.heartbeats, timeout=30)

    async def start_scheduler(self, name: str = "scheduler", **sections: dict[str, Any]) -> None:
        await self.spawn(name, "scheduler", **sections)

    async def start_gateway(
        self, name: str = "gateway", nats: dict[str, Any] | None = None, **gateway: Any
    ) -> str:
        """`nats`: settings of the gateway's own [nats] section (its servers, say)."""
        port = free_port()
        listen = {"listen": f"127.0.0.1:{port}", **gateway}
        await self.spawn(name, "gateway", gateway=listen, **({"nats": nats} if nats else {}))
        self.gateway_url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=self.gateway_url) as client:
            for _ in range(60):  # each try waits up to 1 s inside the gateway once it is up
                try:
                    health = await client.get(
                        f"/health?scheduler=true&min_neurons={len(self.heartbeats)}&wait=1",
                        timeout=5,
                    )
                    if health.status_code == 200:
                        return self.gateway_url
                except httpx.TransportError:
                    await self.next_change(timeout=0.5)  # not listening yet
        raise TimeoutError(f"gateway {name} did not become ready")

    async def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        await process.wait()

    async def restart_nats(self) -> None:
        port, store = self.nats.port, self.nats.store_dir
        await asyncio.to_thread(self.nats.stop)
        self.nats = EmbeddedNats("127.0.0.1", port, store)
        await asyncio.to_thread(self.nats.start)

    def log_of(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text()

    # --- what the bus shows -------------------------------------------------------------

    async def _on_heartbeat(self, msg: Msg) -> None:
        beat = codec.decode(msg.data, Heartbeat)
        async with self._changed:
            self.heartbeats[beat.node] = beat
            self._changed.notify_all()

    async def next_change(self, timeout: float) -> None:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except TimeoutError:
                pass

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 30) -> None:
        """Until `condition()` holds, re-checked at each heartbeat seen on the bus."""

        async def holds() -> None:
            async with self._changed:
                while not condition():
                    await self._changed.wait()

        await asyncio.wait_for(holds(), timeout)

    def busy(self, node: str, model: str) -> int:
        beat = self.heartbeats.get(node)
        loaded = next((m for m in beat.models if m.id == model), None) if beat else None
        return (loaded.busy + loaded.queued) if loaded else 0

    def ready(self, node: str, model: str) -> bool:
        beat = self.heartbeats.get(node)
        return beat is not None and any(m.id == model and m.state == "ready" for m in beat.models)


@asynccontextmanager
async def process_fleet(
    folder: Path, server: EmbeddedNats | None = None
) -> AsyncIterator[ProcessFleet]:
    """A fleet on a nats-server of its own, or on `server` (running, and left running)."""
    owned = server is None
    if server is None:
        server = EmbeddedNats("127.0.0.1", -1, folder / "nats")
        await asyncio.to_thread(server.start)
    nc = await nats.connect(
        server.url, reconnect_time_wait=0.1, max_reconnect_attempts=-1, connect_timeout=2
    )
    fleet = ProcessFleet(folder=folder, nats=server, nc=nc)
    await nc.subscribe(subjects.HEARTBEATS, cb=fleet._on_heartbeat)
    try:
        yield fleet
    finally:
        for process in fleet.processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in fleet.processes.values():
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
        await nc.close()
        if owned:
            await asyncio.to_thread(fleet.nats.stop)
