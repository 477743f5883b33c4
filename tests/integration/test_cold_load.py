"""Cold loads through the scheduler: concurrent requests share one load, and the bus shows it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import nats

from cortex_wire import codec, subjects
from cortex_wire.messages import ModelEvent
from tests.support.stack import RunningStack, stack_on_own_bus


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


def test_a_load_longer_than_the_idle_limit_does_not_fail_its_request(tmp_path: Path) -> None:
    """The stream's silence is counted from when the neuron took the request: the load
    before it (here 1.5 s, three times the idle limit) is waiting, not silence."""
    script = {"reply": "Loaded at last.", "load_s": 1.5, "tokens_per_s": 200}
    models = [{"id": "slow-load", "script": script, "vram_mb": 10}]
    with stack_on_own_bus(
        tmp_path, models, node="slow-load-neuron",
        gateway={"stream_idle_timeout_s": 0.5, "keepalive_interval_s": 0.1},
        neuron={"keepalive_interval_s": 0.1},
    ) as stack:  # fmt: skip
        client = stack.openai()
        ask = {"model": "slow-load", "messages": [{"role": "user", "content": "hi"}]}
        chunks = list(client.chat.completions.create(**ask, stream=True))
        whole = client.chat.completions.create(**ask)  # loaded now: the usual path
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole.choices[0].message.content == "Loaded at last."
