"""A streaming client that goes away mid-answer: the neuron stops generating."""

from __future__ import annotations

import asyncio

import httpx
import nats

from cortex_wire import codec, subjects
from cortex_wire.messages import Done
from tests.support.stack import RunningStack


async def test_client_disconnect_cancels_generation_on_the_neuron(stack: RunningStack) -> None:
    nc = await nats.connect(stack.nats_url)
    done: asyncio.Future[Done] = asyncio.get_running_loop().create_future()
    body = {
        "model": "tiny-endless",
        "stream": True,
        "messages": [{"role": "user", "content": "go"}],
    }
    try:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as client:
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                assert response.status_code == 200
                request_id = response.headers["x-request-id"]

                async def on_frame(msg) -> None:
                    frame = codec.decode_frame(msg.data)
                    if isinstance(frame, Done) and not done.done():
                        done.set_result(frame)

                await nc.subscribe(subjects.stream(request_id), cb=on_frame)
                async for line in response.aiter_lines():
                    if '"content":"tick' in line:
                        break  # leave mid-stream: the connection closes with this block
        finished = await asyncio.wait_for(done, 30)
    finally:
        await nc.close()
    assert finished.finish_reason == "cancelled"
    assert finished.usage.completion_tokens < 8000  # it would have filled its 8192 context
