"""`cortex load|unload|pin|unpin|explain|status`: operator commands, answered by the active
scheduler over NATS. Each says plainly when it cannot reach the bus or a scheduler."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from typing import Any

import msgspec
import nats
from nats.aio.client import Client
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from cortex_core.bus import connect_options
from cortex_core.bus_address import bus_url, url_origin
from cortex_core.config import Settings
from cortex_core.scheduler_client import NoScheduler, SchedulerClient, SchedulerSilent
from cortex_wire import codec, subjects
from cortex_wire.messages import (
    CandidateView,
    EnsureModel,
    EnsureReply,
    Explanation,
    FleetStatus,
    Heartbeat,
    ModelRef,
    SchedulerReply,
    WireError,
)
from cortex_wire.outcomes import Code
from cortex_wire.verdicts import Ready, Refused, readiness, refusal

# A command waits this long for a standby to take over when no scheduler answers.
FAILOVER_GRACE_S = 4.0
REQUEST_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0


class CommandError(Exception):
    """Something the operator must be told; the command exits 1."""


class UsageError(CommandError):
    """The command line itself is wrong; the command exits 2, as argparse's errors do."""


async def _connect(settings: Settings, config: str | None) -> Client:
    options = connect_options(settings.nats)
    options.update(allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2)
    last_error: list[Exception] = []

    async def remember(error: Exception) -> None:  # instead of nats-py's traceback spam
        last_error.append(error)

    try:
        return await asyncio.wait_for(
            nats.connect(name="cortex-cli", error_cb=remember, **options), CONNECT_TIMEOUT_S
        )
    except Exception as error:
        cause = last_error[-1] if last_error else error
        reason = str(cause) or type(cause).__name__
        where = url_origin(settings.nats, config, os.environ)
        raise CommandError(
            f"cannot reach NATS at {bus_url(settings.nats)} ({where}): {reason}"
        ) from None


async def _ask(
    nc: Client,
    subject: str,
    message: Any,
    reply_type: type[Any],
    timeout: float = REQUEST_TIMEOUT_S,
) -> Any:
    try:
        return await SchedulerClient(nc, FAILOVER_GRACE_S).ask(
            subject, message, reply_type, timeout
        )
    except NoScheduler:
        raise CommandError(f"no scheduler is running (nothing answers {subject})") from None
    except SchedulerSilent as silent:
        raise CommandError(str(silent)) from None


def _fail(refused: Refused) -> CommandError:
    return CommandError(f"{refused.code}: {refused.message}")


async def load(nc: Client, console: Console, model: str, node: str) -> None:
    """Load and wait, with a progress bar fed by llama.cpp's progress in heartbeats."""
    started = time.monotonic()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task(f"loading {model}{f' on {node}' if node else ''}", total=1.0)

        named = [model]  # the id the scheduler resolved the name to, once it says

        async def on_heartbeat(msg: Any) -> None:
            heartbeat = codec.decode(msg.data, Heartbeat)
            loaded = next((m for m in heartbeat.models if m.id == named[0]), None)
            if loaded is not None and loaded.state == "loading":
                progress.update(bar, completed=loaded.load_progress,
                                description=f"loading {named[0]} on {heartbeat.node}")  # fmt: skip

        beats = await nc.subscribe(subjects.HEARTBEATS, cb=on_heartbeat)
        try:
            while True:
                ask = EnsureModel(model=model, node=node)
                reply = await _ask(nc, subjects.SCHED_ENSURE, ask, EnsureReply)
                named[0] = reply.model or model
                verdict = readiness(reply)
                if isinstance(verdict, Refused):
                    raise _fail(verdict)
                if isinstance(verdict, Ready):
                    progress.update(bar, completed=1.0)
                    break
        finally:
            await beats.unsubscribe()
    console.print(f"{named[0]} is ready on {verdict.node} ({time.monotonic() - started:.1f}s)")


async def simple(nc: Client, console: Console, subject: str, model: str, node: str) -> None:
    reply: SchedulerReply = await _ask(
        nc, subject, ModelRef(model=model, node=node), SchedulerReply, timeout=600
    )
    refused = refusal(reply.ok, reply.error)
    if refused is not None:
        raise _fail(refused)
    console.print(reply.detail)


_NO_PLAN = WireError(code=Code.INTERNAL, message="the scheduler answered without a plan")


def plan_of(raw: bytes) -> Explanation:
    """The scheduler's explanation, or why there is none (a model no live neuron serves; a
    request it could not read, answered as a refusal) as a CommandError."""
    try:
        plan = codec.decode(raw, Explanation)
    except msgspec.ValidationError:
        reply = codec.decode(raw, SchedulerReply)
        raise _fail(Refused(reply.error or _NO_PLAN)) from None
    if plan.error is not None:
        raise _fail(Refused(plan.error))
    return plan


def _how(candidate: CandidateView) -> str:
    fits = (
        "fits now"
        if candidate.fits_now
        else f"after evicting {', '.join(e.model for e in candidate.evictions)}"
    )
    return f"{fits}, {candidate.free_mb} MiB free"


def explain_lines(plan: Explanation, node: str) -> list[str]:
    """`cortex explain` in words (pure). A model already on the neuron asked about (any,
    without --node) is there, and nothing would load; where a replica more could go is
    what `--node` would ask."""
    model = plan.model  # what the scheduler resolved the name to (an alias names a model)
    here = [n for n in plan.already_on if not node or n == node]
    if here:
        lines = [f"{model} is already on {', '.join(here)} (nothing to load)"]
        lines += [
            f"  a replica more could load on {c.node} ({_how(c)}): "
            f"cortex load {model} --node {c.node}"
            for c in plan.candidates
            if c.node not in plan.already_on
        ]
        return lines
    lines = [f"{model} is already on {', '.join(plan.already_on)}"] if plan.already_on else []
    lines.append(f"{model} would load on [bold]{plan.node or 'no neuron'}[/]: {plan.reason}")
    lines += [f"  evict {e.model} from {e.node}: {e.reason}" for e in plan.evictions]
    lines += [f"  also possible: {c.node} ({_how(c)})" for c in plan.candidates[1:]]
    lines += [f"  not {node_name}: {why}" for node_name, why in plan.rejected.items()]
    return lines


async def explain(nc: Client, console: Console, model: str, node: str, as_json: bool) -> None:
    raw = await _ask(nc, subjects.SCHED_EXPLAIN, ModelRef(model=model, node=node), msgspec.Raw)
    plan = plan_of(bytes(raw))
    if as_json:
        sys.stdout.write(msgspec.json.format(codec.encode(plan)).decode() + "\n")
        return
    for line in explain_lines(plan, node):
        console.print(line)


def _status_tables(status: FleetStatus) -> list[Table]:
    neurons = Table(title=f"neurons (scheduler {status.leader}, eviction {status.strategy})")
    for column in ("neuron", "devices", "memory used / capacity", "models", "cycles"):
        neurons.add_column(column)
    models = Table(title="models")
    for column in ("model", "neuron", "state", "busy", "queued", "tok/s", "pinned"):
        models.add_column(column)
    pinned = {(p.model, p.node) for p in status.pins}
    for heartbeat in status.neurons:
        used = sum(m.footprint_mb for m in heartbeat.models if m.state != "failed")
        devices = ", ".join(f"{d.name} {d.total_mb} MiB" for d in heartbeat.devices)
        neurons.add_row(heartbeat.node, devices, f"{used} / {heartbeat.memory_budget_mb} MiB",
                        str(len(heartbeat.models)), str(heartbeat.cycles))  # fmt: skip
        for model in heartbeat.models:
            pin = (model.id, heartbeat.node) in pinned or (model.id, "") in pinned
            counts = (str(model.busy), str(model.queued), f"{model.tokens_per_s:.1f}")
            state = (
                f"failed: {model.error}" if model.state == "failed" and model.error else model.state
            )
            models.add_row(model.id, heartbeat.node, state, *counts, "yes" if pin else "")
    return [neurons, models]


async def status(nc: Client, console: Console, as_json: bool) -> None:
    fleet: FleetStatus = await _ask(nc, subjects.SCHED_STATUS, ModelRef(model=""), FleetStatus)
    if as_json:
        sys.stdout.write(msgspec.json.format(codec.encode(fleet)).decode() + "\n")
        return
    for table in _status_tables(fleet):
        console.print(table)
    if fleet.pins:
        console.print("pins: " + ", ".join(f"{p.model}@{p.node or 'any'}" for p in fleet.pins))


async def top(nc: Client, console: Console, interval: float) -> None:
    """`cortex status`, refreshing in place until Ctrl-C (plain repeated tables off a terminal)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def frame() -> Group:
        fleet: FleetStatus = await _ask(nc, subjects.SCHED_STATUS, ModelRef(model=""), FleetStatus)
        stamp = time.strftime("%H:%M:%S")
        return Group(
            *_status_tables(fleet), f"[dim]{stamp} · every {interval:g}s · Ctrl-C quits[/]"
        )

    with Live(await frame(), console=console, auto_refresh=False) as live:
        while not stop.is_set():
            if not console.is_terminal:
                console.print(live.renderable)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                live.update(await frame(), refresh=True)


def run_fleet_command(settings: Settings, command: str, args: Any) -> int:
    console = Console(stderr=False)
    errors = Console(stderr=True, soft_wrap=True)

    async def main() -> None:
        nc = await _connect(settings, getattr(args, "config", None))
        try:
            node = getattr(args, "node", None) or ""
            if command == "load":
                await load(nc, console, args.model, node)
            elif command == "unload":
                await simple(nc, console, subjects.SCHED_UNLOAD, args.model, node)
            elif command == "pin":
                await simple(nc, console, subjects.SCHED_PIN, args.model, node)
            elif command == "unpin":
                await simple(nc, console, subjects.SCHED_UNPIN, args.model, "")
            elif command == "explain":
                await explain(nc, console, args.model, node, args.json)
            elif command == "status":
                await status(nc, console, args.json)
            elif command == "top":
                await top(nc, console, args.interval)
            elif command == "watch":
                from cortex_cli.watch import watch

                await watch(nc, args.pattern, console)
        finally:
            await nc.close()

    try:
        asyncio.run(main())
    except UsageError as error:
        errors.print(f"cortex {command}: {error}", markup=False)
        return 2
    except CommandError as error:
        errors.print(f"cortex {command}: {error}", markup=False)
        return 1
    return 0
