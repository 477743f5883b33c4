"""Answering one inference request: run it on the bus, project its events into the
route's dialect, stream or collect, and stop it when the client goes away."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import structlog
from litestar import MediaType, Request, Response
from litestar.response import Stream

from cortex_gateway import residency
from cortex_gateway.errors import ApiError
from cortex_gateway.events import Answer
from cortex_gateway.gateway_state import Gateway
from cortex_gateway.inference import StreamItem
from cortex_gateway.metrics import RequestTrace
from cortex_gateway.projection import CallInfo, Turn, collect, project
from cortex_gateway.reasoning_view import INCLUDE_THINKING_HEADER, wants_inline_thinking
from cortex_wire import subjects
from cortex_wire.messages import Failed, InferRequest

log = structlog.get_logger("gateway")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def _until_disconnected(request: Request[Any, Any, Any]) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _collect_while_connected(
    request: Request[Any, Any, Any], run: Any
) -> dict[str, Any] | None:
    """The whole response — or None if the client left first (its generation is then
    cancelled on the neuron, as closing the stream publishes the cancel)."""
    work = asyncio.ensure_future(run)
    gone = asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if work.done():
        result: dict[str, Any] = work.result()
        return result
    work.cancel()
    await asyncio.gather(work, return_exceptions=True)
    log.info("client_disconnected", path=request.url.path)
    return None


# Unique across replicas (random per process) and cheap per request (os.urandom per request
# showed in profiles at 64 concurrent streams).
_ID_BASE = uuid.uuid4().hex[:20]
_id_counter = itertools.count()


def next_request_id() -> str:
    return f"{_ID_BASE}{next(_id_counter):012x}"


async def answer(
    gateway: Gateway, request: Request[Any, Any, Any], turn: Turn
) -> Response[Any] | Stream:
    model = gateway.resolve_model(turn.model)
    gateway.check_kind(model, embedding=False)
    early = await residency.before(gateway, request, model, turn.residency, turn.residency_only)
    if early is not None:
        return early
    response = await _answer(gateway, request, turn, model)
    return residency.after(gateway, model, turn.residency, response)


async def _answer(
    gateway: Gateway, request: Request[Any, Any, Any], turn: Turn, model: str
) -> Response[Any] | Stream:
    request_id = f"{turn.request_prefix}{next_request_id()}"
    infer = InferRequest(
        request_id=request_id,
        model=model,
        stream_subject=subjects.stream(request_id),
        gateway=gateway.name,
        stream_calls=turn.stream,
        messages=turn.ask.messages,
        prompt=turn.ask.prompt,
        params=turn.ask.params,
        tools=turn.ask.tools,
        chat_template_kwargs=turn.ask.chat_template_kwargs,
        thinking=turn.ask.thinking,
        reasoning_effort=turn.ask.reasoning_effort,
        continue_final=turn.ask.continue_final,
        suffix=turn.ask.suffix,
        prompt_tokens=turn.ask.prompt_tokens,
        logprobs=turn.ask.logprobs,
        prompt_logprobs=turn.ask.prompt_logprobs,
    )
    call = CallInfo(
        request_id=request_id,
        model=turn.model,
        trace=RequestTrace(
            gateway.metrics, model, turn.route, gateway.publish_record, request_id, gateway.name
        ),
        stream=turn.stream,
        inline_thinking=wants_inline_thinking(request.headers.get(INCLUDE_THINKING_HEADER)),
    )
    structlog.contextvars.bind_contextvars(request_id=request_id)
    items = gateway.inference.stream(infer)
    headers = {"x-request-id": request_id}
    if turn.stream:
        # Headers go out once a neuron accepted the request (or a cold load began): a
        # refusal before that (unknown model, 429 overloaded, 503) is a real HTTP status.
        # The neuron starts meanwhile, while the response is being set up.
        first = await anext(items)
        if isinstance(first, Failed):
            await items.aclose()
            raise ApiError.from_wire(first.error)
        body = project(resumed(first, items), turn.reply, call, Answer())
        return Stream(body, media_type=turn.media_type, headers={**SSE_HEADERS, **headers})
    result = await _collect_while_connected(request, collect(items, turn.reply, call))
    if result is None:
        return Response(b"", status_code=499)
    return Response(result, media_type=MediaType.JSON, headers=headers)


async def resumed(
    first: StreamItem, items: AsyncGenerator[StreamItem, None]
) -> AsyncGenerator[StreamItem, None]:
    """`items` again, with its already-taken first item in front."""
    async with aclosing(items):
        yield first
        async for item in items:
            yield item
