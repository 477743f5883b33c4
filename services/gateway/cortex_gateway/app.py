"""HTTP routes (Litestar): a thin shell over the pure translation modules and the bus."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import structlog
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery
from litestar.response import Stream
from nats.aio.client import Client

from cortex_core.config import GatewaySettings
from cortex_core.fleet import FleetState
from cortex_gateway import openai_chat, sse
from cortex_gateway.errors import ApiError
from cortex_gateway.inference import WAITING, Accepted, Inference, StreamItem
from cortex_gateway.metrics import GatewayMetrics, RequestTrace
from cortex_gateway.reasoning_view import (
    INCLUDE_THINKING_HEADER,
    ChatDeltas,
    ChatMessageBuilder,
    wants_inline_thinking,
)
from cortex_wire import subjects
from cortex_wire.messages import Delta, Done, Failed, InferRequest, ReasoningDelta, Usage

log = structlog.get_logger("gateway")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass
class Gateway:
    nc: Client
    fleet: FleetState
    settings: GatewaySettings
    metrics: GatewayMetrics

    def __post_init__(self) -> None:
        self.inference = Inference(self.nc, self.fleet, self.settings)
        self._changed = asyncio.Event()

    def fleet_changed(self) -> None:
        """Wake readiness waiters (called for every accepted heartbeat)."""
        self._changed.set()
        self._changed = asyncio.Event()

    def has_neurons(self, count: int, node: str) -> bool:
        live = self.fleet.live(time.monotonic())
        return len(live) >= count and (not node or any(v.node == node for v in live))

    async def wait_for_neurons(self, count: int, node: str, timeout: float) -> bool:
        """True once `count` neurons (and `node`, if named) are live; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.has_neurons(count, node):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return False
        return True

    def resolve_model(self, name: str) -> str:
        now = time.monotonic()
        if not self.fleet.live(now):
            raise ApiError(
                503, "no neuron is connected, so no model can be served",
                code="no_neurons", type="service_unavailable", retry_after=1,
            )  # fmt: skip
        model = self.fleet.resolve(name, now)
        if model not in self.fleet.catalogue(now):
            raise ApiError(
                404, f"The model `{name}` does not exist or is not served by any neuron.",
                code="model_not_found", param="model",
            )  # fmt: skip
        return model

    def models_body(self) -> dict[str, Any]:
        now = time.monotonic()
        catalogue = self.fleet.catalogue(now)
        data: list[dict[str, Any]] = []
        for model_id, view in sorted(catalogue.items()):
            entry: dict[str, Any] = {
                "id": model_id,
                "object": "model",
                "created": 0,
                "owned_by": "cortex",
                "context_length": view.entry.n_ctx,
                "served_by": sorted(view.served_by),
                "state": {node: m.state for node, m in sorted(view.states.items())},
            }
            # Whether a model reasons is read from its vocabulary when it loads.
            states = view.states.values()
            reasoning: list[str] = next(
                (m.reasoning_markers for m in states if m.reasoning_markers), []
            )
            entry["capabilities"] = ["reasoning"] if reasoning else []
            if reasoning:
                entry["reasoning_markers"] = reasoning
            data.append(entry)
        for alias, target in sorted(self.fleet.aliases(now).items()):
            if target in catalogue:
                data.append(
                    {
                        "id": alias,
                        "object": "model",
                        "created": 0,
                        "owned_by": "cortex",
                        "alias_for": target,
                    }
                )
        return {"object": "list", "data": data}


def _error_response(error: ApiError) -> Response[Any]:
    return Response(error.openai_body(), status_code=error.status, headers=error.headers())


def _api_error_handler(_: Request[Any, Any, Any], error: ApiError) -> Response[Any]:
    return _error_response(error)


def _http_error_handler(_: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    kind = "invalid_request_error" if error.status_code < 500 else "server_error"
    code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
        error.status_code
    )
    return _error_response(ApiError(error.status_code, str(error.detail), code=code, type=kind))


def _internal_error_handler(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    log.exception("unhandled_error", path=request.url.path)
    return _error_response(
        ApiError(500, f"internal error: {type(error).__name__}", type="server_error")
    )


@dataclass
class ChatCall:
    """One chat completion request as the HTTP layer answers it."""

    request_id: str
    model: str  # as the client named it (an alias stays an alias)
    created: int
    trace: RequestTrace
    include_usage: bool = False
    inline_thinking: bool = False

    def deltas(self, accepted: Accepted) -> ChatDeltas:
        return ChatDeltas(accepted.reasoning_markers if self.inline_thinking else None)

    def chunk(self, delta: dict[str, Any], reason: str | None = None) -> bytes:
        body = openai_chat.chunk_body(
            request_id=self.request_id, model=self.model, created=self.created,
            delta=delta, reason=reason,
        )  # fmt: skip
        return sse.data(body)


async def _chat_stream(
    call: ChatCall, items: AsyncGenerator[StreamItem, None]
) -> AsyncIterator[bytes]:
    """OpenAI chat SSE: role chunk, content/reasoning chunks, finish chunk, [usage], [DONE]."""
    outcome, usage = "cancelled", Usage()
    deltas = ChatDeltas(None)
    started = False
    try:
        async with aclosing(items):
            async for item in items:
                if item is WAITING:
                    yield sse.KEEPALIVE
                    continue
                if isinstance(item, Accepted):
                    deltas = call.deltas(item)
                    continue
                if isinstance(item, Delta | ReasoningDelta) and not started:
                    started = True
                    call.trace.first_token()
                    yield call.chunk({"role": "assistant", "content": ""})
                if isinstance(item, Delta):
                    delta = deltas.text(item.text)
                elif isinstance(item, ReasoningDelta):
                    delta = deltas.reasoning(item.text)
                elif isinstance(item, Done):
                    if not started:
                        yield call.chunk({"role": "assistant", "content": ""})
                    closing = deltas.finish()
                    if closing:
                        yield call.chunk(closing)
                    yield call.chunk({}, item.finish_reason)
                    if call.include_usage:
                        yield sse.data(
                            openai_chat.usage_chunk_body(
                                request_id=call.request_id,
                                model=call.model,
                                created=call.created,
                                usage=item.usage,
                            )
                        )
                    outcome, usage = "ok", item.usage
                    continue
                elif isinstance(item, Failed):
                    error = ApiError.from_wire(item.error)
                    outcome = error.code or "error"
                    yield sse.data(error.openai_body())
                    continue
                if delta:
                    yield call.chunk(delta)
        yield sse.DONE
    except ApiError as error:
        outcome = error.code or "error"
        log.warning("stream_failed", request_id=call.request_id, error=error.message)
        yield sse.data(error.openai_body())
        yield sse.DONE
    finally:
        call.trace.finish(outcome, usage.prompt_tokens, usage.completion_tokens)


async def _chat_collect(call: ChatCall, items: AsyncGenerator[StreamItem, None]) -> dict[str, Any]:
    builder = ChatMessageBuilder(ChatDeltas(None))
    try:
        async with aclosing(items):
            async for item in items:
                if isinstance(item, Accepted):
                    builder = ChatMessageBuilder(call.deltas(item))
                elif isinstance(item, Delta):
                    call.trace.first_token()
                    builder.add(builder.deltas.text(item.text))
                elif isinstance(item, ReasoningDelta):
                    call.trace.first_token()
                    builder.add(builder.deltas.reasoning(item.text))
                elif isinstance(item, Done):
                    usage = item.usage
                    call.trace.finish("ok", usage.prompt_tokens, usage.completion_tokens)
                    return openai_chat.completion_body(
                        request_id=call.request_id, model=call.model, created=call.created,
                        message=builder.message(), reason=item.finish_reason, usage=usage,
                    )  # fmt: skip
                elif isinstance(item, Failed):
                    raise ApiError.from_wire(item.error)
        raise ApiError(502, "the stream ended without a result", type="server_error")
    except ApiError as error:
        call.trace.finish(error.code or "error")
        raise
    finally:
        call.trace.finish("cancelled")


def create_app(gateway: Gateway) -> Litestar:
    @get("/health")
    async def health(
        min_neurons: FromQuery[int] = 0, neuron: FromQuery[str] = "", wait: FromQuery[float] = 0.0
    ) -> Response[Any]:
        """Liveness; with `min_neurons` or `neuron`, readiness (waiting up to `wait` s)."""
        ready = await gateway.wait_for_neurons(min_neurons, neuron, min(max(wait, 0.0), 60.0))
        body = {
            "status": "ok" if ready else "waiting",
            "nats": "connected" if gateway.nc.is_connected else "disconnected",
            "neurons": len(gateway.fleet.live(time.monotonic())),
        }
        return Response(body, status_code=200 if ready else 503)

    @get("/v1/models", sync_to_thread=False)
    def list_models() -> dict[str, Any]:
        return gateway.models_body()

    @get("/v1/models/{model_id:path}", sync_to_thread=False)
    def get_model(model_id: FromPath[str]) -> dict[str, Any]:
        name = model_id.lstrip("/")
        for entry in gateway.models_body()["data"]:
            if entry["id"] == name:
                return dict(entry)
        raise ApiError(
            404, f"The model `{name}` does not exist.", code="model_not_found", param="model"
        )

    @post("/v1/chat/completions", status_code=200)
    async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        chat = openai_chat.parse_request(await request.body())
        model = gateway.resolve_model(chat.model)
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        infer = InferRequest(
            request_id=request_id,
            model=model,
            stream_subject=subjects.stream(request_id),
            messages=openai_chat.chat_messages(chat),
            params=openai_chat.sampling_params(chat),
            chat_template_kwargs=chat.chat_template_kwargs or {},
        )
        call = ChatCall(
            request_id=request_id,
            model=chat.model,
            created=int(time.time()),
            trace=RequestTrace(gateway.metrics, model, "chat"),
            include_usage=bool(chat.stream_options and chat.stream_options.include_usage),
            inline_thinking=wants_inline_thinking(request.headers.get(INCLUDE_THINKING_HEADER)),
        )
        items = gateway.inference.stream(infer)
        headers = {"x-request-id": request_id}
        if chat.stream:
            body = _chat_stream(call, items)
            return Stream(body, media_type="text/event-stream", headers={**SSE_HEADERS, **headers})
        result = await _chat_collect(call, items)
        return Response(result, media_type=MediaType.JSON, headers=headers)

    return Litestar(
        route_handlers=[health, list_models, get_model, chat_completions],
        exception_handlers={
            ApiError: _api_error_handler,
            HTTPException: _http_error_handler,
            Exception: _internal_error_handler,
        },
        request_max_body_size=gateway.settings.max_body_bytes,
        openapi_config=None,
    )
