"""Running the scheduler."""

from __future__ import annotations

import asyncio

from cortex_core.bus import connect
from cortex_core.config import Settings
from cortex_scheduler.service import Scheduler


async def run_scheduler(settings: Settings, stop: asyncio.Event) -> None:
    nc = await connect(settings.nats, "cortex-scheduler")
    try:
        await Scheduler(settings, nc).run(stop)
    finally:
        await nc.drain()
