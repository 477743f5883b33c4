"""Running one service in the foreground: config, logging, signals, exit codes."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable

import structlog

from cortex_core.config import ConfigError, Settings, load_settings
from cortex_core.logs import configure_logging

Runner = Callable[[Settings, asyncio.Event], Awaitable[None]]


def run_service(name: str, config_path: str | None, runner: Runner) -> int:
    try:
        settings = load_settings(config_path)
    except ConfigError as error:
        print(f"cortex {name}: config error: {error}", file=sys.stderr)
        return 2
    configure_logging(name)
    log = structlog.get_logger(name)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await runner(settings, stop)

    try:
        asyncio.run(main())
    except ConfigError as error:
        print(f"cortex {name}: config error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        log.exception("service_failed", error=str(error))
        return 1
    return 0
