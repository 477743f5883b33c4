"""Cold loads through the scheduler: concurrent requests share one load, and the bus shows it."""

from __future__ import annotations

import asyncio

import httpx
import nats

from cortex_wire import codec, subjects
from cortex_wire.messages import ModelEvent
from tests.support.stack import RunningStack


async def test_concurrent_requests_for_a_cold_model_share_one_load(stack: RunningStack) -> None:
    nc = await nats.connect(stack.nats_url)
    events: list[ModelEvent] = []

    async def on_event(msg) -> None:
        events.append(codec.decode(msg.data, ModelEvent))

    await nc.subscribe(subjects.model_event("test-neuron", "tiny-cold"), cb=on_event)
    body = {"model": "tiny-cold", "messages": [{"role": "user", "content": "hi"}]}
    try:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as client:
            replies = await asyncio.gather(
                *(client.post("/v1/chat/completions", json=body) for _ in range(4))
            )
        await nc.flush()
    finally:
        await nc.close()
    assert [r.status_code for r in replies] == [200] * 4
    assert {r.json()["choices"][0]["message"]["content"] for r in replies} == {"Hello, world!"}
    states = [e.state for e in events]
    assert states.count("loading") == 1, states
    assert states.count("ready") == 1, states
