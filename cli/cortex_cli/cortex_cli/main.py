"""The `cortex` command."""

from __future__ import annotations

import argparse
import asyncio
import sys

from cortex_cli.lifecycle import run_service
from cortex_core.config import Settings


def _config_arg(parser: argparse.ArgumentParser, dest: str = "config") -> None:
    parser.add_argument(
        "--config", dest=dest, metavar="FILE", help="cortex.toml (default: built-in defaults)"
    )


def positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be > 0 seconds, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cortex", description="One OpenAI/Anthropic-compatible API over a fleet of local LLMs."
    )
    # --config before the command, as well as after it (after wins: see parse_args).
    _config_arg(parser, dest="config_before")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser("up", help="run the whole stack here (embedded NATS, demo model)")
    _config_arg(up)
    up.add_argument("--models", metavar="FILE", help="models.toml to serve (default: demo model)")
    up.add_argument(
        "--join", metavar="NATS_URL",
        help="join an existing fleet: run only this host's neuron, on that bus "
        "(comma-separate several cluster members)",
    )  # fmt: skip
    for name, text in (
        ("gateway", "run the HTTP gateway"),
        ("neuron", "run a neuron on this host"),
        ("scheduler", "run the scheduler"),
        ("nats", "run the embedded nats-server (JetStream) in the foreground"),
    ):
        _config_arg(commands.add_parser(name, help=text))
    for name, text, node_help in (
        ("load", "load a model (and wait until it is ready)", "on this neuron"),
        ("unload", "unload a model", "only from this neuron"),
        ("pin", "keep a model loaded (survives restarts)", "on this neuron"),
        ("unpin", "release a pin", None),
        ("explain", "where a model would load and what it would evict", "on this neuron"),
    ):
        sub = commands.add_parser(name, help=text)
        _config_arg(sub)
        sub.add_argument("model")
        if node_help:
            sub.add_argument("--node", metavar="NEURON", help=node_help)
        if name == "explain":
            sub.add_argument("--json", action="store_true", help="machine-readable output")
    top = commands.add_parser("top", help="cortex status, live, refreshing in place")
    _config_arg(top)
    top.add_argument("--interval", type=positive_seconds, default=1.0, metavar="SECONDS")
    watch = commands.add_parser("watch", help="every bus message as it happens, decoded")
    _config_arg(watch)
    watch.add_argument("pattern", nargs="?", default="cortex.>", help="NATS subject pattern")
    status = commands.add_parser("status", help="the fleet: neurons, models, pins")
    _config_arg(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


async def _run_nats(settings: Settings, stop: asyncio.Event) -> None:
    from cortex_core.nats_server import EmbeddedNats, cluster_args

    bus = settings.nats
    server = EmbeddedNats(
        bus.embedded_host,
        bus.embedded_port,
        settings.resolved_state_dir() / "nats",
        echo=sys.stderr,
        extra_args=cluster_args(bus.cluster_name, bus.cluster_listen, bus.routes, bus.server_name),
    )
    await asyncio.to_thread(server.start)
    try:
        await stop.wait()
    finally:
        server.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with `config` the one --config that counts: the command's own,
    else the one given before the command."""
    args = build_parser().parse_args(argv)
    args.config = getattr(args, "config", None) or args.config_before
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "up":
        from cortex_cli.up import run_up

        return run_up(args.config, args.models, args.join)
    if args.command == "gateway":
        from cortex_gateway.service import run_gateway

        return run_service("gateway", args.config, run_gateway)
    if args.command == "neuron":
        from cortex_neuron.main import run_neuron

        return run_service("neuron", args.config, run_neuron)
    if args.command == "scheduler":
        from cortex_scheduler.main import run_scheduler

        return run_service("scheduler", args.config, run_scheduler)
    if args.command == "nats":
        return run_service("nats", args.config, _run_nats)
    return _fleet_command(args)


def _fleet_command(args: argparse.Namespace) -> int:
    from cortex_cli.fleet_commands import run_fleet_command
    from cortex_core.config import ConfigError, load_settings

    if args.command == "watch":
        from cortex_cli.watch import pattern_problem

        problem = pattern_problem(args.pattern)
        if problem is not None:
            line = f"cortex watch: invalid subject pattern {args.pattern!r}: {problem}"
            print(line, file=sys.stderr)
            return 2

    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"cortex {args.command}: config error: {error}", file=sys.stderr)
        return 2
    return run_fleet_command(settings, args.command, args)


if __name__ == "__main__":
    sys.exit(main())
