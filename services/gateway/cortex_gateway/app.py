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
from cortex_gateway.inference import WAITING, Inference, StreamItem
from cortex_gateway.metrics import GatewayMetrics, RequestTrace
from cortex_wire import subjects
from cortex_wire.messages import Delta, Done, Failed, InferRequest

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

    async def wait_for_neurons(self, count: int, timeout: float) -> bool:
        """True once `count` neurons are live; False if `timeout` passes first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.fleet.live(time.monotonic())) < count:
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
            data.append(
                {
                    "id": model_id,
                    "object": "model",
                    "created": 0,
                    "owned_by": "cortex",
                    "context_length": view.entry.n_ctx,
                    "served_by": sorted(view.served_by),
                    "state": {node: m.state for node, m in sorted(view.states.items())},
                }
            )
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


async def _chat_stream(
    items: AsyncGenerator[StreamItem, None], trace: RequestTrace, request_id: str, model: str,
    created: int, include_usage: bool,
) -> AsyncIterator[bytes]:  # fmt: skip
    """OpenAI chat SSE: role chunk, content chunks, finish chunk, [usage], [DONE]."""
    started = False
    outcome = "cancelled"
    usage_tokens = (0, 0)

    def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
        return sse.data(
            openai_chat.chunk_body(
                request_id=request_id, model=model, created=created, delta=delta, reason=reason
            )
        )

    try:
        async with aclosing(items):
            async for item in items:
                if item is WAITING:
                    yield sse.KEEPALIVE
                elif isinstance(item, Delta):
                    if not started:
                        started = True
                        trace.first_token()
                        yield chunk({"role": "assistant", "content": ""})
                    if item.text:
                        yield chunk({"content": item.text})
                elif isinstance(item, Done):
                    if not started:
                        yield chunk({"role": "assistant", "content": ""})
                    yield chunk({}, item.finish_reason)
                    if include_usage:
                        yield sse.data(
                            openai_chat.usage_chunk_body(
                                request_id=request_id,
                                model=model,
                                created=created,
                                usage=item.usage,
                            )
                        )
                    usage_tokens = (item.usage.prompt_tokens, item.usage.completion_tokens)
                    outcome = "ok"
                elif isinstance(item, Failed):
                    error = ApiError.from_wire(item.error)
                    outcome = error.code or "error"
                    yield sse.data(error.openai_body())
        yield sse.DONE
    except ApiError as error:
        outcome = error.code or "error"
        log.warning("stream_failed", request_id=request_id, error=error.message)
        yield sse.data(error.openai_body())
        yield sse.DONE
    finally:
        trace.finish(outcome, *usage_tokens)


async def _chat_collect(
    items: AsyncGenerator[StreamItem, None],
    trace: RequestTrace,
    request_id: str,
    model: str,
    created: int,
) -> dict[str, Any]:
    parts: list[str] = []
    try:
        async with aclosing(items):
            async for item in items:
                if isinstance(item, Delta):
                    trace.first_token()
                    parts.append(item.text)
                elif isinstance(item, Done):
                    trace.finish("ok", item.usage.prompt_tokens, item.usage.completion_tokens)
                    return openai_chat.completion_body(
                        request_id=request_id, model=model, created=created,
                        text="".join(parts), reason=item.finish_reason, usage=item.usage,
                    )  # fmt: skip
                elif isinstance(item, Failed):
                    raise ApiError.from_wire(item.error)
        raise ApiError(502, "the stream ended without a result", type="server_error")
    except ApiError as error:
        trace.finish(error.code or "error")
        raise
    finally:
        trace.finish("cancelled")


def create_app(gateway: Gateway) -> Litestar:
    @get("/health")
    async def health(
        min_neurons: FromQuery[int] = 0, wait: FromQuery[float] = 0.0
    ) -> Response[Any]:
        """Liveness; with `min_neurons`, readiness (waiting up to `wait` seconds for them)."""
        ready = await gateway.wait_for_neurons(min_neurons, min(max(wait, 0.0), 60.0))
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
        trace = RequestTrace(gateway.metrics, model, "chat")
        created = int(time.time())
        items = gateway.inference.stream(infer)
        headers = {"x-request-id": request_id}
        if chat.stream:
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            body = _chat_stream(items, trace, request_id, chat.model, created, include_usage)
            return Stream(body, media_type="text/event-stream", headers={**SSE_HEADERS, **headers})
        result = await _chat_collect(items, trace, request_id, chat.model, created)
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
