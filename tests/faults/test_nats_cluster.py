"""A fleet on a three-member NATS cluster (real nats-servers, clustered on loopback), its
services attached to different members: SIGKILL the member that the active scheduler and
a streaming neuron are on, and the fleet carries on — the stream ends whole or with an
in-band error, everyone reconnects to another member, new requests succeed, the pin and a
leader survive (the lease and pins buckets have three copies), nothing loads twice; the
killed member then comes back and rejoins with the replicated state."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.errors import TimeoutError as NatsTimeout

from cortex_core.nats_server import EmbeddedNats, cluster_args
from cortex_wire import codec, subjects
from cortex_wire.messages import FleetStatus, ModelRef
from tests.conftest import free_port
from tests.faults.test_processes_killed import chat, events, talker
from tests.support.processes import ProcessFleet, process_fleet

pytestmark = pytest.mark.timeout(240)

MEMBERS = 3
# Every member logs one of these once the JetStream cluster has a metadata leader.
ELECTED = ("new metadata leader", "Self is new JetStream cluster metadata leader")


class Cluster:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.client_ports = [free_port() for _ in range(MEMBERS)]
        self.cluster_ports = [free_port() for _ in range(MEMBERS)]
        self.members = [self._member(i) for i in range(MEMBERS)]

    def _member(self, index: int) -> EmbeddedNats:
        routes = [f"nats://127.0.0.1:{p}" for j, p in enumerate(self.cluster_ports) if j != index]
        listen = f"127.0.0.1:{self.cluster_ports[index]}"
        return EmbeddedNats(
            "127.0.0.1", self.client_ports[index], self.folder / f"nats-{index}",
            extra_args=cluster_args("cortex", listen, routes, f"member-{index}"),
        )  # fmt: skip

    async def start(self, *indexes: int) -> None:
        """Start these members (all by default); return once each knows a meta leader."""
        chosen = [self.members[i] for i in indexes or range(MEMBERS)]
        elected = [member.watch_log(*ELECTED) for member in chosen]
        await asyncio.gather(*(asyncio.to_thread(member.start) for member in chosen))
        for event in elected:
            assert await asyncio.to_thread(event.wait, 30), "no JetStream meta leader"

    def kill(self, index: int) -> None:
        process = self.members[index].process
        assert process is not None
        process.kill()
        process.wait()

    async def restart(self, index: int) -> None:
        self.members[index] = self._member(index)  # same ports, same store
        await self.start(index)

    def bus(self, index: int) -> dict[str, Any]:
        """[nats] for a service on member `index`, the others behind it."""
        urls = [f"nats://127.0.0.1:{p}" for p in self.client_ports]
        ordered = [urls[index], *(u for j, u in enumerate(urls) if j != index)]
        return {"url": ",".join(ordered), "kv_replicas": MEMBERS}

    def stop(self) -> None:
        for member in self.members:
            member.stop()


@asynccontextmanager
async def cluster_fleet(folder: Path) -> AsyncIterator[tuple[Cluster, ProcessFleet]]:
    cluster = Cluster(folder)
    try:
        await cluster.start()
        # The test watches the bus from the member that stays up.
        async with process_fleet(folder, server=cluster.members[2]) as fleet:
            yield cluster, fleet
    finally:
        await asyncio.to_thread(cluster.stop)


async def admin(fleet: ProcessFleet, operation: str, model: str, node: str) -> None:
    async with httpx.AsyncClient(base_url=fleet.gateway_url, timeout=60) as client:
        answer = await client.post(
            f"/admin/models/{operation}",
            json={"model": model, "node": node},
            headers={"authorization": "Bearer admin"},
        )
        assert answer.status_code == 200, answer.text


async def test_the_fleet_survives_losing_a_cluster_member(tmp_path: Path) -> None:
    async with cluster_fleet(tmp_path) as (cluster, fleet):
        model = talker(tokens_per_s=20)
        await fleet.start_neuron("n1", [model], nats=cluster.bus(0))
        await fleet.start_neuron("n2", [model], nats=cluster.bus(2))
        await fleet.start_scheduler("s1", nats=cluster.bus(0))
        await fleet.start_gateway(nats=cluster.bus(1), admin_keys=["admin"])  # s1 leads
        await fleet.start_scheduler("s2", nats=cluster.bus(1))
        await admin(fleet, "pin", "talker", "n1")
        await fleet.wait_for(lambda: fleet.ready("n1", "talker"))

        # A stream on n1 (the only replica), then member 0 — n1's and s1's — dies.
        lines: list[str] = []
        body = {**chat(max_tokens=60), "stream_options": {"include_usage": True}}
        async with httpx.AsyncClient(base_url=fleet.gateway_url, timeout=60) as client:
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                assert response.status_code == 200
                stream = response.aiter_lines()
                async for line in stream:
                    lines.append(line)
                    if '"content"' in line:
                        break
                await asyncio.to_thread(cluster.kill, 0)
                async for line in stream:
                    lines.append(line)
        chunks = events(lines)
        assert [line for line in lines if line][-1] == "data: [DONE]"
        if "error" not in chunks[-1]:  # it completed: whole and in order
            text = "".join(
                c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
            )
            assert text == ("tick tock " * 6)[:60]

        # Everyone found another member: n1 heartbeats again, a scheduler leads, and new
        # requests are answered.
        async with httpx.AsyncClient(base_url=fleet.gateway_url, timeout=60) as client:
            health = await client.get("/health?neuron=n1&scheduler=true&wait=30")
            assert health.status_code == 200, health.text
            answer = await client.post("/v1/chat/completions", json=chat(4, stream=False))
            assert answer.status_code == 200, answer.text
            assert answer.json()["usage"]["completion_tokens"] == 4
        status = codec.decode(
            (
                await fleet.nc.request(
                    subjects.SCHED_STATUS, codec.encode(ModelRef(model="")), timeout=10
                )
            ).data,
            FleetStatus,
        )
        assert status.leader
        assert [(p.model, p.node) for p in status.pins] == [("talker", "n1")]
        assert fleet.log_of("n1").count('"model_loading"') == 1  # loaded once, never again
        assert '"model_loading"' not in fleet.log_of("n2")

        # The killed member comes back and holds the replicated pins again.
        await cluster.restart(0)
        rejoined = await nats.connect(f"nats://127.0.0.1:{cluster.client_ports[0]}")
        try:
            entry = await pinned_on(rejoined)
            assert entry.value is not None and json.loads(entry.value)["node"] == "n1"
        finally:
            await rejoined.close()


async def pinned_on(client: nats.NATS, within_s: float = 60) -> Any:
    """The talker pin as read through `client`'s server. A member that has just rejoined
    answers JetStream only once it has caught up with the others: each try waits for an
    answer (nothing here sleeps), up to `within_s` in all."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        try:
            pins = await client.jetstream(timeout=5).key_value(subjects.PINS_BUCKET)
            return await pins.get(subjects.kv_key("talker"))
        except NatsTimeout:
            if asyncio.get_running_loop().time() > deadline:
                raise


def test_cortex_nats_runs_one_member_of_a_cluster_from_its_config(tmp_path: Path) -> None:
    """`cortex nats` with [nats] cluster settings: a member that takes routes on its
    cluster port, under its own server name, in the named cluster."""
    port, route_port = free_port(), free_port()
    config = tmp_path / "cortex.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[nats]\nembedded_port = {port}\n'
        f'cluster_name = "fleet"\ncluster_listen = "127.0.0.1:{route_port}"\n'
        f'routes = ["nats://127.0.0.1:{free_port()}"]\nserver_name = "core-1"\n'
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "cortex_cli.main", "nats", "--config", str(config)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:  # its log, up to where it takes routes (after ready)
            seen.append(line)
            if "Listening for route connections" in line:
                break
        log = "".join(seen)
        assert re.search(r"Cluster:\s+fleet\n", log), log
        assert re.search(r"Name:\s+core-1\n", log), log
        assert f"Listening for route connections on 127.0.0.1:{route_port}" in log, log
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
