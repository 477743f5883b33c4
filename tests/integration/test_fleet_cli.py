"""`cortex load|unload|pin|unpin|explain|status` as an operator runs them, against a live fleet."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
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


async def cortex(
    fleet: Fleet, *args: str, url: str | None = None, config_text: str | None = None
) -> tuple[int, str, str]:
    config = fleet.folder / "cli.toml"
    config.write_text(config_text or f'[nats]\nurl = "{url or fleet.nats_url}"\n')
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cortex_cli.main", *args, "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("CORTEX_")},
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

    # The pin would load it straight back: refused, saying what to do.
    code, _, err = await cortex(fleet, "unload", "a")
    assert code == 1 and "model_pinned: 'a' is pinned on n1; unpin it first" in err
    code, out, _ = await cortex(fleet, "status", "--json")
    assert [m["state"] for m in json.loads(out)["neurons"][0]["models"]] == ["ready"]

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
    assert code == 1 and "model_not_found: unknown model 'ghost'" in err
    code, out, err = await cortex(fleet, "unload", "ghost")
    assert code == 1 and "model_not_found: unknown model 'ghost'" in err and out == ""
    code, _, err = await cortex(fleet, "pin", "ghost")
    assert code == 1 and "model_not_found: not pinned: unknown model 'ghost'" in err

    code, _, err = await cortex(fleet, "status", url=f"nats://127.0.0.1:{free_port()}")
    assert code == 1 and "cannot reach NATS at nats://127.0.0.1:" in err


def embedded_port(fleet: Fleet) -> int:
    return int(fleet.nats_url.rsplit(":", 1)[1])


async def test_without_a_url_cli_and_services_find_the_embedded_bus(tmp_path: Path) -> None:
    """The cortex.toml `cortex up --config` used (embedded_port set, no url) is enough for
    `cortex status --config` and for a service run alone."""
    async with running_fleet(tmp_path) as bus:
        port = embedded_port(bus)
        await bus.start_scheduler(nats={"url": "", "embedded_port": port})
        code, out, err = await cortex(
            bus, "status", "--json", config_text=f"[nats]\nembedded_port = {port}\n"
        )
    assert code == 0, err
    assert json.loads(out)["neurons"] == []


async def started_watch(folder: Path, nats_url: str) -> asyncio.subprocess.Process:
    """`cortex watch` on that bus, its lines wide enough not to wrap."""
    config = folder / "watch.toml"
    config.write_text(f'[nats]\nurl = "{nats_url}"\n')
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cortex_cli.main", "watch", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip


async def lines_until(
    process: asyncio.subprocess.Process, done: Callable[[str], bool], what: str
) -> list[str]:
    """The command's output lines, up to the first that is `done`."""
    assert process.stdout is not None
    seen: list[str] = []
    while not seen or not done(seen[-1]):
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert line, f"{what} ended"
        seen.append(line)
    return seen


async def interrupted(process: asyncio.subprocess.Process) -> int:
    """Ctrl-C, and the exit code once it has stopped."""
    process.send_signal(signal.SIGINT)
    return await asyncio.wait_for(process.wait(), 30)


async def test_watch_prints_every_kind_of_subject(tmp_path: Path) -> None:
    async with running_fleet(tmp_path) as bus:
        process = await started_watch(bus.folder, bus.nats_url)
        assert process.stdout is not None
        try:
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            assert "watching cortex.>" in line
            # Kinds with no style of their own, payloads that look like rich markup.
            await bus.nc.publish("cortex.metrics.request", b'{"text":"[/] [bold]x"}')
            await bus.nc.publish("cortex.neuron.n1.vocab", b'"[red]"')
            await bus.nc.publish("cortex.event.scheduler.loaded", b'{"model":"last"}')
            await bus.nc.flush()
            seen = await lines_until(process, lambda s: '"last"' in s, "cortex watch")
        finally:
            code = await interrupted(process)
    assert code == 0
    assert any("cortex.metrics.request" in s and '"[/] [bold]x"' in s for s in seen), seen
    assert any("cortex.neuron.n1.vocab" in s and '"[red]"' in s for s in seen), seen


async def test_without_a_scheduler_the_cli_says_so(tmp_path: Path) -> None:
    async with running_fleet(tmp_path) as empty:
        code, _, err = await cortex(empty, "status")
    assert code == 1 and "no scheduler is running" in err


async def test_watch_shows_the_bus_live(fleet: Fleet) -> None:
    process = await started_watch(fleet.folder, fleet.nats_url)
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
    try:
        assert (await fleet.ensure("a")).ok
        seen = await lines_until(
            process, lambda s: "ready" in s and s.lstrip("│ ").startswith("a "), "cortex top"
        )
    finally:
        code = await interrupted(process)
    assert code == 0
    assert any("n1" in line for line in seen)
