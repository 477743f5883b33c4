"""`cortex load|unload|pin|unpin|explain|status` as an operator runs them, against a live fleet."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.support.fleet import Fleet, running_fleet


@pytest.fixture
async def fleet(tmp_path: Path, hello_model) -> AsyncIterator[Fleet]:
    async with running_fleet(tmp_path) as running:
        models = [
            {"id": m, "path": str(hello_model.path), "n_ctx": 256, "vram_mb": 400}
            for m in ("a", "b")
        ]
        await running.start_neuron("n1", 1000, models, aliases={"first": "a"})
        await running.start_scheduler()
        yield running


async def cortex(fleet: Fleet, *args: str, url: str | None = None) -> tuple[int, str, str]:
    config = fleet.folder / "cli.toml"
    config.write_text(f'[nats]\nurl = "{url or fleet.nats_url}"\n')
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cortex_cli.main", *args, "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_load_status_explain_pin_unpin_unload(fleet: Fleet) -> None:
    code, out, _ = await cortex(fleet, "explain", "a")
    assert code == 0 and "a would load on n1: fits in 1000 MiB free" in out

    code, out, _ = await cortex(fleet, "load", "a")
    assert code == 0 and "a is ready on n1" in out

    code, out, _ = await cortex(fleet, "pin", "a", "--node", "n1")
    assert code == 0 and "pinned 'a' on n1" in out

    code, out, _ = await cortex(fleet, "status", "--json")
    status = json.loads(out)
    assert code == 0
    assert [(p["model"], p["node"]) for p in status["pins"]] == [("a", "n1")]
    assert [m["id"] for m in status["neurons"][0]["models"]] == ["a"]

    code, out, _ = await cortex(fleet, "status")
    assert code == 0 and "n1" in out and "pins: a@n1" in out

    code, out, _ = await cortex(fleet, "explain", "b", "--json")
    plan = json.loads(out)
    assert (plan["node"], plan["evictions"]) == ("n1", [])

    code, out, _ = await cortex(fleet, "unpin", "a")
    assert code == 0 and "unpinned 'a'" in out
    code, out, _ = await cortex(fleet, "unload", "a")
    assert code == 0 and "unloaded 'a' from n1" in out
    code, out, _ = await cortex(fleet, "unload", "a")
    assert code == 0 and "'a' is not loaded" in out


async def test_an_alias_names_its_model_for_every_operation(fleet: Fleet) -> None:
    for command, said in (
        ("explain", "a would load on n1"),
        ("load", "a is ready on n1"),
        ("explain", "a is already on n1"),
        ("pin", "pinned 'a' on n1"),
        ("unpin", "unpinned 'a'"),
        ("unload", "unloaded 'a' from n1"),
    ):
        code, out, _ = await cortex(fleet, command, "first")
        assert code == 0 and said in out, (command, out)


async def test_errors_say_what_went_wrong(fleet: Fleet) -> None:
    code, _, err = await cortex(fleet, "load", "ghost")
    assert code == 1 and "no_capacity" in err and "ghost" in err

    code, _, err = await cortex(fleet, "status", url=f"nats://127.0.0.1:{free_port()}")
    assert code == 1 and "cannot reach NATS at nats://127.0.0.1:" in err


async def test_without_a_scheduler_the_cli_says_so(tmp_path: Path) -> None:
    async with running_fleet(tmp_path) as empty:
        code, _, err = await cortex(empty, "status")
    assert code == 1 and "no scheduler is running" in err


async def test_watch_shows_the_bus_live(fleet: Fleet) -> None:
    config = fleet.folder / "watch.toml"
    config.write_text(f'[nats]\nurl = "{fleet.nats_url}"\n')
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cortex_cli.main", "watch", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    assert process.stdout is not None

    async def line_with(needle: str) -> str:
        while True:
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            assert line, "cortex watch ended"
            if needle in line:
                return line

    try:
        await line_with("watching cortex.>")
        beat = await line_with("cortex.neuron.n1.heartbeat")
        assert "n1 #" in beat and "models:" in beat
        assert (await fleet.ensure("a")).ok
        event = await line_with("cortex.event.scheduler.loaded")
        assert '"model":"a"' in event and '"node":"n1"' in event
    finally:
        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), 30)
    assert code == 0


async def test_top_refreshes_the_fleet_view(fleet: Fleet) -> None:
    config = fleet.folder / "top.toml"
    config.write_text(f'[nats]\nurl = "{fleet.nats_url}"\n')
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cortex_cli.main", "top", "--interval", "0.2",
        "--config", str(config), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert process.stdout is not None
    seen: list[str] = []
    try:
        assert (await fleet.ensure("a")).ok
        while not any("ready" in line and line.lstrip("│ ").startswith("a ") for line in seen):
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            assert line, "cortex top ended"
            seen.append(line)
    finally:
        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), 30)
    assert code == 0
    assert any("n1" in line for line in seen)
