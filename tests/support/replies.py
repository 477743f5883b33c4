"""Drive a dialect's Reply over a list of bus items, as the gateway does: the streamed
bytes, or the whole body."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from cortex_gateway.events import Answer
from cortex_gateway.inference import StreamItem
from cortex_gateway.metrics import GatewayMetrics, RequestTrace
from cortex_gateway.projection import CallInfo, Reply, collect, project


def call_info(stream: bool, inline_thinking: bool = False, request_id: str = "r1") -> CallInfo:
    trace = RequestTrace(GatewayMetrics(), "m", "test")
    return CallInfo(
        request_id=request_id, model="m", trace=trace, created=1, stream=stream,
        inline_thinking=inline_thinking,
    )  # fmt: skip


async def _items(items: Sequence[StreamItem]) -> AsyncGenerator[StreamItem, None]:
    for item in items:
        yield item


def answer_of(
    reply: Reply, items: Sequence[StreamItem], stream: bool, inline_thinking: bool = False
) -> Any:
    """Streamed: the chunks joined (bytes); whole: the body (a dict)."""
    call = call_info(stream, inline_thinking)

    async def go() -> Any:
        if not stream:
            return await collect(_items(items), reply, call)
        return b"".join([c async for c in project(_items(items), reply, call, Answer())])

    return asyncio.run(go())


def chunks_of(
    reply: Reply, items: Sequence[StreamItem], inline_thinking: bool = False
) -> list[bytes]:
    """The streamed writes, one per item as the gateway makes them."""
    call = call_info(True, inline_thinking)

    async def go() -> list[bytes]:
        return [c async for c in project(_items(items), reply, call, Answer())]

    return asyncio.run(go())
