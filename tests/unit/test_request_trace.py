"""What a request's trace learns from its stream as it passes: the prompt's size once a
neuron accepted it (Anthropic's message_start reports it), the tokens streamed (a request
that ends before its final frame still counts them), and which request a task answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Sequence

from cortex_gateway import anthropic_messages as am
from cortex_gateway import sse
from cortex_gateway.answering import noted
from cortex_gateway.events import Answer
from cortex_gateway.inference import WAITING, Accepted, StreamItem
from cortex_gateway.metrics import GatewayMetrics, RequestTrace, counted_request
from cortex_gateway.projection import CallInfo, project
from cortex_wire.messages import Delta, Done, ReasoningDelta, Usage


async def _items(items: Sequence[StreamItem]) -> AsyncGenerator[StreamItem, None]:
    for item in items:
        yield item


def _call(metrics: GatewayMetrics) -> CallInfo:
    trace = RequestTrace(metrics, "m", "messages", request_id="msg_1")
    return CallInfo(request_id="msg_1", model="m", trace=trace, stream=True)


def _streamed(items: Sequence[StreamItem], stop_after: int | None = None) -> list[bytes]:
    """The writes of an Anthropic stream over `items`; with `stop_after`, the client leaves
    after that many writes."""
    call = _call(GatewayMetrics())

    async def go() -> list[bytes]:
        chunks: list[bytes] = []
        body = project(noted(_items(items), call.trace), am.messages_reply(False), call, Answer())
        async for chunk in body:
            chunks.append(chunk)
            if stop_after is not None and len(chunks) == stop_after:
                break
        await body.aclose()
        return chunks

    return asyncio.run(go())


def test_message_start_waits_for_the_neuron_and_reports_the_prompts_tokens() -> None:
    items = [
        WAITING,  # a cold load: nothing is known yet
        Accepted(node="n", reasoning_markers=[], prompt_tokens=12),
        WAITING,
        Delta(seq=0, text="Hi", tokens=1),
        Done(seq=1, finish_reason="stop", usage=Usage(prompt_tokens=12, completion_tokens=1,
                                                       cached_tokens=4)),
    ]  # fmt: skip
    chunks = _streamed(items)
    assert chunks[0] == sse.KEEPALIVE  # a comment: no event comes before message_start
    name, data = chunks[1].decode().split("\n", 1)
    assert name == "event: message_start"
    start = json.loads(data.removeprefix("data: "))
    assert start["message"]["usage"]["input_tokens"] == 12
    assert chunks[2].startswith(b"event: ping")
    [delta] = [
        json.loads(block.split("\ndata: ")[1])
        for block in b"".join(chunks).decode().split("\n\n")
        if block.startswith("event: message_delta")
    ]
    assert delta["usage"]["input_tokens"] + delta["usage"]["cache_read_input_tokens"] == 12


def test_a_stream_that_ends_before_its_final_frame_counts_what_it_was_sent() -> None:
    metrics = GatewayMetrics()
    call = _call(metrics)
    items = [
        Accepted(node="n", reasoning_markers=[], prompt_tokens=9),
        ReasoningDelta(seq=0, text="hm", tokens=2),
        Delta(seq=1, text="a", tokens=3),
        Delta(seq=2, text="b", tokens=1),
    ]

    async def go() -> None:
        body = project(noted(_items(items), call.trace), am.messages_reply(True), call, Answer())
        async for _ in body:
            pass  # the items end without a Done: the client left, or the stream broke

    asyncio.run(go())
    labels = {"model": "m", "node": "n", "route": "messages"}
    value = metrics.registry.get_sample_value
    assert value("cortex_requests_total", {**labels, "outcome": "cancelled"}) == 1
    assert value("cortex_completion_tokens_total", labels) == 6
    assert value("cortex_reasoning_tokens_total", labels) == 2
    assert value("cortex_prompt_tokens_total", labels) == 9
    assert value("cortex_requests_in_flight", {"model": "m", "route": "messages"}) == 0


def test_the_request_a_task_answers_is_its_own() -> None:
    async def answering(request_id: str) -> tuple[str | None, str | None]:
        before = counted_request()
        RequestTrace(GatewayMetrics(), "m", "chat", request_id=request_id)
        RequestTrace(GatewayMetrics(), "m", "chat", request_id=f"{request_id}-1")  # choice 1
        return before, counted_request()

    async def go() -> list[tuple[str | None, str | None]]:
        first = await answering("a")
        # A task started from that context (a connection's next request) inherits the
        # value, and starts afresh all the same.
        return [first, await asyncio.create_task(answering("b"))]

    assert asyncio.run(go()) == [(None, "a"), (None, "b")]
    assert counted_request() is None  # no task at all
