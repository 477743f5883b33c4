"""Answering one inference request: run it on the bus, project its events into the
route's dialect, stream or collect, and stop it when the client goes away."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from contextlib import aclosing
from typing import Any, TypeVar

import msgspec
import structlog
from litestar import MediaType, Request, Response
from litestar.response import Stream

from cortex_gateway import residency
from cortex_gateway.choices import choice_seed, interleaved, merged_body, total_usage
from cortex_gateway.errors import ApiError
from cortex_gateway.events import Answer
from cortex_gateway.gateway_state import Gateway
from cortex_gateway.inference import Accepted, StreamItem
from cortex_gateway.keep_alive import Residency
from cortex_gateway.metrics import RequestTrace
from cortex_gateway.projection import CallInfo, Turn, collect, project
from cortex_gateway.reasoning_view import INCLUDE_THINKING_HEADER, wants_inline_thinking
from cortex_wire import subjects
from cortex_wire.messages import (
    Delta,
    Failed,
    InferRequest,
    ReasoningDelta,
    ToolCallBlock,
    ToolCallFrame,
)
from cortex_wire.outcomes import Code

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


def id_headers(request_id: str) -> dict[str, str]:
    """A request's id as response headers: `request-id` (the Anthropic SDKs read it) and
    `x-request-id`."""
    return {"request-id": request_id, "x-request-id": request_id}


async def answer(
    gateway: Gateway, request: Request[Any, Any, Any], turn: Turn
) -> Response[Any] | Stream:
    model = gateway.resolve_model(turn.model)
    gateway.check_kind(model, embedding=False)
    if turn.residency_only is not None:  # nothing to run: a load or an unload, counted
        request_id = f"{turn.request_prefix}{next_request_id()}"
        early = await counted_load(
            gateway, model, turn.route, request_id, turn.residency is not Residency.UNLOAD,
            residency.before(gateway, request, model, turn.residency, turn.residency_only),
        )  # fmt: skip
        assert early is not None
        early.headers.update(id_headers(request_id))
        return early
    await residency.before(gateway, request, model, turn.residency)
    response = await _answer(gateway, request, turn, model)
    return residency.after(gateway, model, turn.residency, response)


Done = TypeVar("Done")


async def counted_load(
    gateway: Gateway, model: str, route: str, request_id: str, loads: bool, work: Awaitable[Done]
) -> Done:
    """A request that only loads its model (or unloads it: not `loads`), counted and timed
    as every request is: Ollama clients preload so."""
    trace = RequestTrace(
        gateway.metrics, model, route, gateway.publish_record, request_id, gateway.name
    )
    cold = loads and not gateway.fleet.ready_replicas(model, time.monotonic())
    started = time.perf_counter()
    try:
        done = await work
    except ApiError as error:
        trace.finish(error.code or "error")
        raise
    except BaseException:
        trace.finish("cancelled")
        raise
    trace.accepted("", cold, time.perf_counter() - started if cold else 0.0)
    trace.finish("ok")
    return done


async def _answer(
    gateway: Gateway, request: Request[Any, Any, Any], turn: Turn, model: str
) -> Response[Any] | Stream:
    gateway.check_room(model, turn.choices)
    request_id = f"{turn.request_prefix}{next_request_id()}"
    structlog.contextvars.bind_contextvars(request_id=request_id)
    inline = wants_inline_thinking(request.headers.get(INCLUDE_THINKING_HEADER))
    calls: list[CallInfo] = []
    items: list[AsyncGenerator[StreamItem, None]] = []
    for choice in range(turn.choices):  # one generation per choice, started together
        own_id = f"{request_id}-{choice}" if choice else request_id
        trace = RequestTrace(
            gateway.metrics, model, turn.route, gateway.publish_record, own_id, gateway.name
        )
        calls.append(
            CallInfo(
                request_id=request_id, model=turn.model, trace=trace, stream=turn.stream,
                inline_thinking=inline, choice=choice, choices=turn.choices,
            )
        )  # fmt: skip
        items.append(gateway.inference.stream(_infer_request(gateway, turn, model, own_id, choice)))
    headers = id_headers(request_id)
    if turn.stream:
        # Headers go out once a neuron accepted the request (or a cold load began): a
        # refusal before that (unknown model, 429 overloaded, 503) is a real HTTP status.
        # The neuron starts meanwhile, while the response is being set up.
        try:
            firsts = await asyncio.gather(*(anext(stream) for stream in items))
        except BaseException as error:
            gone = isinstance(error, asyncio.CancelledError)
            for call in calls:
                call.trace.finish("cancelled" if gone else getattr(error, "code", Code.INTERNAL))
            raise
        failed = next((first for first in firsts if isinstance(first, Failed)), None)
        if failed is not None:
            for stream in items:
                await stream.aclose()
            for first, call in zip(firsts, calls, strict=True):  # refused: counted here
                call.trace.finish(first.error.code if isinstance(first, Failed) else "cancelled")
            raise ApiError.from_wire(failed.error)
        answers = [Answer() for _ in calls]
        streams = [
            project(noted(stream, call.trace, first), turn.reply, call, answer)
            for first, stream, call, answer in zip(firsts, items, calls, answers, strict=True)
        ]
        body = streams[0] if len(streams) == 1 else _together(streams, turn, calls[0], answers)
        return Stream(body, media_type=turn.media_type, headers={**SSE_HEADERS, **headers})
    try:
        result = await _collect_while_connected(request, _collect_all(items, turn, calls))
    finally:
        for call in calls:  # one cancelled before it ever ran (finishing again is a no-op)
            call.trace.finish("cancelled")
    if result is None:
        return Response(b"", status_code=499, headers=headers)
    return Response(result, media_type=MediaType.JSON, headers=headers)


def _infer_request(
    gateway: Gateway, turn: Turn, model: str, request_id: str, choice: int
) -> InferRequest:
    ask, nth = turn.ask_for(choice)
    params = ask.params
    if nth:
        params = msgspec.structs.replace(params, seed=choice_seed(params.seed, nth))
    return InferRequest(
        request_id=request_id,
        model=model,
        stream_subject=subjects.stream(request_id),
        gateway=gateway.name,
        stream_calls=turn.stream and not turn.reply.calls_whole,
        messages=ask.messages,
        prompt=ask.prompt,
        params=params,
        tools=ask.tools,
        chat_template_kwargs=ask.chat_template_kwargs,
        thinking=ask.thinking,
        reasoning_effort=ask.reasoning_effort,
        continue_final=ask.continue_final,
        suffix=ask.suffix,
        prompt_tokens=ask.prompt_tokens,
        logprobs=ask.logprobs,
        prompt_logprobs=ask.prompt_logprobs,
        require_call=ask.require_call,
        single_call=ask.single_call,
        callable=ask.callable,
    )


async def _collect_all(
    items: list[AsyncGenerator[StreamItem, None]], turn: Turn, calls: list[CallInfo]
) -> dict[str, Any]:
    tasks = [
        asyncio.ensure_future(collect(noted(stream, call.trace), turn.reply, call))
        for stream, call in zip(items, calls, strict=True)
    ]
    try:
        bodies = await asyncio.gather(*tasks)
    finally:
        for task in tasks:  # one choice failed: the others stop generating, too
            task.cancel()
    return bodies[0] if len(bodies) == 1 else merged_body(bodies, turn.per_prompt)


async def _together(
    streams: list[AsyncIterator[bytes]], turn: Turn, call: CallInfo, answers: list[Answer]
) -> AsyncIterator[bytes]:
    """Every choice's chunks as they come, then the end of the stream, once."""
    async with aclosing(interleaved(streams)) as chunks:
        async for chunk in chunks:
            yield chunk
    assert turn.reply.closing is not None  # only dialects with a closing take n > 1
    usage = total_usage([answer.usage for answer in answers], turn.per_prompt)
    for chunk in turn.reply.closing(call, usage):
        yield chunk


async def noted(
    items: AsyncGenerator[StreamItem, None], trace: RequestTrace, *taken: StreamItem
) -> AsyncGenerator[StreamItem, None]:
    """`items` (after those already `taken` from it), each noted on the request's trace as
    it passes: the prompt's length once a neuron accepted it, the tokens of every frame (so
    a request that ends before its final frame, the client gone, still counts them)."""
    async with aclosing(items):
        for item in taken:
            _note(trace, item)
            yield item
        async for item in items:
            _note(trace, item)
            yield item


def _note(trace: RequestTrace, item: StreamItem) -> None:
    if isinstance(item, Delta | ToolCallBlock | ToolCallFrame):
        trace.generated(item.tokens)
    elif isinstance(item, ReasoningDelta):
        trace.generated(item.tokens, reasoning=True)
    elif isinstance(item, Accepted):
        trace.admitted(item.prompt_tokens)
