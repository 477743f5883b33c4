"""A neuron run in the test's own event loop on a real nats-server, serving a models.toml
(scripted models: their pace is set there), up once its first heartbeat is heard."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from cortex_neuron.main import run_neuron
from cortex_wire import codec, subjects
from cortex_wire.messages import Heartbeat
from tests.support.stack import stack_settings


def scripted(
    model: str, tokens_per_s: float, *, parallel: int = 2, repeat: bool = True
) -> dict[str, object]:
    """A models.toml entry for a scripted model that plays "abc" at `tokens_per_s` steps."""
    script = {"reply": "abc", "repeat": repeat, "tokens_per_s": tokens_per_s}
    return {"id": model, "n_ctx": 4096, "parallel": parallel, "script": script}


@asynccontextmanager
async def neuron_serving(
    bus: Client, nats_url: str, models: Path, node: str, **neuron: Any
) -> AsyncIterator[Heartbeat]:
    """`neuron`: [neuron] settings beside the test defaults."""
    settings = stack_settings(nats_url, models, node=node, neuron=neuron)
    beat = await bus.subscribe(subjects.heartbeat(node))
    stop = asyncio.Event()
    task = asyncio.create_task(run_neuron(settings, stop))
    try:
        first = codec.decode((await beat.next_msg(timeout=10)).data, Heartbeat)
        await beat.unsubscribe()
        yield first
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
