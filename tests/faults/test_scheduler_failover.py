"""Two scheduler processes, one active: kill -9 the active one and the standby takes over,
with pins intact and no model loaded twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cortex_wire import subjects
from cortex_wire.messages import FleetStatus, ModelRef, SchedulerEvent, SchedulerReply
from tests.support.fleet import Fleet, running_fleet


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    async with running_fleet(tmp_path) as running:
        yield running


def is_leader_event(event: object) -> bool:
    return isinstance(event, SchedulerEvent) and event.kind == "leader_elected"


async def test_standby_takes_over_with_pins_and_no_double_load(
    fleet: Fleet, hello_model, tmp_path: Path
) -> None:
    models = [
        {"id": m, "path": str(hello_model.path), "n_ctx": 256, "vram_mb": 400} for m in ("a", "b")
    ]
    await fleet.start_neuron("n1", 1000, models)
    config = tmp_path / "cortex.toml"
    config.write_text(
        f'[nats]\nurl = "{fleet.nats_url}"\n'
        "[scheduler]\ntick_s = 0.2\nlease_ttl_s = 1.0\nensure_wait_s = 1.0\nwarmup_s = 0.5\n"
        'metrics_listen = ""\n'
    )
    command = [sys.executable, "-m", "cortex_cli.main", "scheduler", "--config", str(config)]
    log = (tmp_path / "schedulers.log").open("w")
    processes = [
        await asyncio.create_subprocess_exec(*command, stdout=log, stderr=log) for _ in range(2)
    ]
    try:
        first = await fleet.wait_for(is_leader_event)
        leader_pid = int(first.node.split(":")[1])
        assert leader_pid in {p.pid for p in processes}
        pinned: SchedulerReply = await fleet.ask(
            subjects.SCHED_PIN, ModelRef(model="a", node="n1"), SchedulerReply
        )
        assert pinned.ok, pinned.error
        assert (await fleet.ensure("a")).node == "n1"

        os.kill(leader_pid, signal.SIGKILL)
        second = await fleet.wait_for(
            lambda e: is_leader_event(e) and e.node != first.node, timeout=20
        )
        assert int(second.node.split(":")[1]) != leader_pid

        status: FleetStatus = await fleet.ask(
            subjects.SCHED_STATUS, ModelRef(model=""), FleetStatus
        )
        assert status.leader == second.node
        assert [(p.model, p.node) for p in status.pins] == [("a", "n1")]
        assert (await fleet.ensure("b")).ok
        assert (await fleet.ensure("a")).node == "n1"
        assert len(fleet.model_events("a", "loading")) == 1
        assert len(fleet.model_events("b", "loading")) == 1
        assert fleet.scheduler_events("evicted") == []
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            await asyncio.wait_for(process.wait(), 30)
        log.close()
