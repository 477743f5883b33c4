"""Running a neuron: catalogue, NATS connection, the Neuron shell."""

from __future__ import annotations

import asyncio

import structlog

from cortex_core.bus import connect
from cortex_core.config import ConfigError, Settings, load_catalogue
from cortex_neuron.service import Neuron

log = structlog.get_logger("neuron")


async def run_neuron(settings: Settings, stop: asyncio.Event) -> None:
    if not settings.neuron.models:
        raise ConfigError(
            "neuron.models: no models file given (set [neuron] models or CORTEX_NEURON_MODELS)"
        )
    catalogue = load_catalogue(settings.neuron.models)
    nc = await connect(settings.nats, f"cortex-neuron-{settings.neuron_name()}")
    try:
        await Neuron(settings, catalogue, nc).run(stop)
    finally:
        await nc.drain()
