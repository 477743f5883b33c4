"""HTTP routes (Litestar): a thin shell over the pure translation modules and the bus."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery
from litestar.response import Stream
from nats.aio.client import Client

from cortex_core.config import GatewaySettings
from cortex_core.fleet import FleetState
from cortex_core.scheduler_client import NoScheduler, SchedulerSilent
from cortex_gateway import (
    anthropic_messages,
    embeddings,
    ollama_api,
    openai_chat,
)
from cortex_gateway.auth import check_access, presented_key
from cortex_gateway.dashboard import RecentRequests, dashboard_data
from cortex_gateway.errors import ApiError
from cortex_gateway.inference import Inference, StreamItem
from cortex_gateway.metrics import GatewayMetrics, RequestTrace
from cortex_gateway.openapi import openapi_document
from cortex_gateway.projection import CallInfo, Turn, collect, project
from cortex_gateway.reasoning_view import INCLUDE_THINKING_HEADER, wants_inline_thinking
from cortex_gateway.routes import ROUTES, Route, api_of
from cortex_wire import codec, subjects
from cortex_wire.messages import (
    EmbedReply,
    EmbedRequest,
    EnsureModel,
    FleetStatus,
    InferRequest,
    ModelRef,
    RequestRecord,
    SchedulerReply,
    Usage,
)

log = structlog.get_logger("gateway")
DASHBOARD_PAGE = (Path(__file__).parent / "dashboard.html").read_text()
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass
class Gateway:
    nc: Client
    fleet: FleetState
    settings: GatewaySettings
    metrics: GatewayMetrics

    def __post_init__(self) -> None:
        self.inference = Inference(self.nc, self.fleet, self.settings)
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._records: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self.metrics.watch_fleet(self.fleet)
        # Every replica's request records (from the bus), for the dashboard.
        self.recent = RecentRequests()

    def publish_record(self, record: RequestRecord) -> None:
        """Every finished request also goes on the bus (cortex.metrics.request); this
        replica's own records reach its dashboard at once, not via the bus."""
        self.recent.add(record)
        if not self.nc.is_connected:
            return
        task = asyncio.create_task(self.nc.publish(subjects.REQUEST_RECORDS, codec.encode(record)))
        self._records.add(task)
        task.add_done_callback(self._records.discard)

    def fleet_changed(self) -> None:
        """Wake readiness waiters (called for every accepted heartbeat)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for_scheduler(self, timeout: float) -> bool:
        """True once an active scheduler answers on the bus; False on timeout."""
        return await self.inference.scheduler.alive(timeout)

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
            raise ApiError.of("no_neurons", "no neuron is connected, so no model can be served")
        model = self.fleet.resolve(name, now)
        if model not in self.fleet.catalogue(now):
            raise ApiError.of(
                "model_not_found",
                f"The model `{name}` does not exist or is not served by any neuron.",
                param="model",
            )
        return model

    def check_kind(self, model: str, embedding: bool) -> None:
        """Refuse an embedding model asked to chat, and a chat model asked to embed."""
        view = self.fleet.catalogue(time.monotonic()).get(model)
        if view is None or view.entry.embedding == embedding:
            return
        what = (
            "a chat model, not an embedding model"
            if embedding
            else "an embedding model: ask /v1/embeddings or /api/embed"
        )
        raise ApiError.of("wrong_model_kind", f"model {model!r} is {what}", param="model")

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
            # How a model reasons and calls tools is read from its GGUF when it loads.
            states = view.states.values()
            reasoning: list[str] = next(
                (m.reasoning_markers for m in states if m.reasoning_markers), []
            )
            dialect: dict[str, str] = next((m.dialect for m in states if m.dialect), {})
            entry["capabilities"] = [
                *(["embeddings"] if view.entry.embedding else []),
                *(["reasoning"] if reasoning else []),
                *(["tools"] if dialect.get("tools") else []),
            ]
            if reasoning:
                entry["reasoning_markers"] = reasoning
            if dialect:
                entry["dialect"] = dialect
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


def _error_response(request: Request[Any, Any, Any], error: ApiError) -> Response[Any]:
    api = api_of(request.url.path)
    body = {
        "ollama": ollama_api.error_body,
        "anthropic": ApiError.anthropic_body,
        "openai": ApiError.openai_body,
    }[api](error)
    return Response(body, status_code=error.status, headers=error.headers())


def _api_error_handler(request: Request[Any, Any, Any], error: ApiError) -> Response[Any]:
    return _error_response(request, error)


def _http_error_handler(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    kind = "invalid_request_error" if error.status_code < 500 else "server_error"
    code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
        error.status_code
    )
    return _error_response(
        request, ApiError(error.status_code, str(error.detail), code=code, type=kind)
    )


def _internal_error_handler(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    log.exception("unhandled_error", path=request.url.path)
    failure = ApiError(500, f"internal error: {type(error).__name__}", type="server_error")
    return _error_response(request, failure)


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
    request_id = f"{turn.request_prefix}{next_request_id()}"
    infer = InferRequest(
        request_id=request_id,
        model=model,
        stream_subject=subjects.stream(request_id),
        gateway=gateway.name,
        stream_calls=turn.stream,
        **turn.infer,
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
    projection = turn.projection(call)
    structlog.contextvars.bind_contextvars(request_id=request_id)
    items = gateway.inference.stream(infer)
    headers = {"x-request-id": request_id}
    if turn.stream:
        # Headers go out once a neuron accepted the request (or a cold load began): a
        # refusal before that (unknown model, 429 overloaded, 503) is a real HTTP status.
        # The neuron starts meanwhile, while the response is being set up.
        first = await anext(items)
        body = project(resumed(first, items), projection)
        return Stream(body, media_type=turn.media_type, headers={**SSE_HEADERS, **headers})
    result = await _collect_while_connected(request, collect(items, projection))
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


async def _scheduler(gateway: Gateway, subject: str, message: Any, reply_type: type[Any]) -> Any:
    """An operator's request to the scheduler (a failover's gap is waited out)."""
    try:
        return await gateway.inference.scheduler.ask(subject, message, reply_type, timeout=600)
    except NoScheduler:
        raise ApiError.of("no_scheduler", "no scheduler is running") from None
    except SchedulerSilent:
        raise ApiError(504, "the scheduler did not answer in time", type="server_error") from None


def create_app(gateway: Gateway) -> Litestar:
    settings = gateway.settings

    async def authenticate(request: Request[Any, Any, Any]) -> None:
        # Connections are reused: a request id bound for the previous request must not
        # label this one's log lines.
        structlog.contextvars.unbind_contextvars("request_id")
        check_access(
            request.url.path,
            presented_key(request.headers),
            require_auth=settings.require_auth,
            api_keys=settings.api_keys,
            admin_keys=settings.admin_keys,
        )

    @post("/admin/models/{operation:str}", status_code=200)
    async def admin_models(
        operation: FromPath[str], request: Request[Any, Any, Any]
    ) -> dict[str, Any]:
        """Operator actions over HTTP: load, unload, pin, unpin (admin key required)."""
        ref = openai_chat.decode_body(await request.body(), ModelRef)
        model, node = gateway.resolve_model(ref.model), ref.node
        if operation == "load":
            limit = gateway.settings.load_timeout_s
            try:
                ensured = await gateway.inference.scheduler.ensure(
                    EnsureModel(model=model, node=node), limit
                )
            except NoScheduler:
                raise ApiError.of("no_scheduler", "no scheduler is running") from None
            if ensured is None:
                raise ApiError.of("load_timeout", f"{model!r} did not load within {limit:g}s")
            if ensured.error is not None:
                raise ApiError.from_wire(ensured.error)
            return {"ok": True, "model": model, "node": ensured.node}
        subject = {"unload": subjects.SCHED_UNLOAD, "pin": subjects.SCHED_PIN,
                   "unpin": subjects.SCHED_UNPIN}.get(operation)  # fmt: skip
        if subject is None:
            raise ApiError.of("not_found", f"unknown admin operation {operation!r}")
        reply = await _scheduler(gateway, subject, ModelRef(model=model, node=node), SchedulerReply)
        if reply.error is not None:
            raise ApiError.from_wire(reply.error)
        return {"ok": True, "model": model, "detail": reply.detail}

    @get("/dashboard", media_type=MediaType.HTML, sync_to_thread=False)
    def dashboard() -> str:
        return DASHBOARD_PAGE

    @get("/dashboard/data", sync_to_thread=False)
    def dashboard_json() -> dict[str, Any]:
        now = time.time()
        return dashboard_data(gateway.fleet, gateway.recent.window(now), time.monotonic(), now)

    @get("/admin/status")
    async def admin_status() -> Response[Any]:
        status = await _scheduler(gateway, subjects.SCHED_STATUS, ModelRef(model=""), FleetStatus)
        return Response(codec.encode(status), media_type=MediaType.JSON)

    @get("/health")
    async def health(
        min_neurons: FromQuery[int] = 0,
        neuron: FromQuery[str] = "",
        scheduler: FromQuery[bool] = False,
        wait: FromQuery[float] = 0.0,
    ) -> Response[Any]:
        """Liveness; with `min_neurons`, `neuron` or `scheduler`, readiness (waiting up to
        `wait` seconds for those neurons, and for an active scheduler to answer)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(wait, 0.0), 60.0)
        ready = await gateway.wait_for_neurons(min_neurons, neuron, deadline - loop.time())
        if ready and scheduler:
            ready = await gateway.wait_for_scheduler(deadline - loop.time())
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
        raise ApiError.of("model_not_found", f"The model `{name}` does not exist.", param="model")

    def answering(route: Route) -> Any:
        """The handler of a route that answers through the projection core."""
        assert route.turn is not None
        to_turn = route.turn

        async def handler(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
            return await answer(gateway, request, to_turn(await request.body()))

        return post(route.path, status_code=200, name=route.path)(handler)

    answering_routes = [answering(route) for route in ROUTES if route.turn is not None]

    @post("/v1/messages/count_tokens", status_code=200)
    async def count_tokens(request: Request[Any, Any, Any]) -> dict[str, Any]:
        counted = openai_chat.decode_body(
            await request.body(), anthropic_messages.CountTokensRequest
        )
        infer = InferRequest(
            request_id=f"count-{next_request_id()}",
            model=gateway.resolve_model(counted.model),
            stream_subject="",
            messages=anthropic_messages.chat_messages(counted.system, counted.messages),
            tools=anthropic_messages.template_tools(counted.tools, None),
            **anthropic_messages.thinking_switch(counted.thinking),
        )
        return {"input_tokens": await gateway.inference.count_tokens(infer)}

    async def embed(name: str, texts: list[str], route: str) -> tuple[EmbedReply, RequestTrace]:
        model = gateway.resolve_model(name)
        gateway.check_kind(model, embedding=True)
        request_id = f"emb-{next_request_id()}"
        trace = RequestTrace(
            gateway.metrics, model, route, gateway.publish_record, request_id, gateway.name
        )
        try:
            node, reply = await gateway.inference.embed(
                EmbedRequest(request_id=request_id, model=model, input=texts)
            )
        except ApiError as error:
            trace.finish(error.code or "error")
            raise
        trace.accepted(node, False, 0.0)
        trace.finish("ok", Usage(prompt_tokens=reply.tokens))
        return reply, trace

    @post("/v1/embeddings", status_code=200)
    async def openai_embeddings(request: Request[Any, Any, Any]) -> dict[str, Any]:
        name, texts, fmt = embeddings.openai_request(await request.body())
        reply, _ = await embed(name, texts, "embeddings")
        return embeddings.openai_body(name, reply.vectors, reply.tokens, fmt)

    @post("/api/embed", status_code=200)
    async def ollama_embed(request: Request[Any, Any, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        name, texts = embeddings.ollama_request(await request.body())
        reply, trace = await embed(name, texts, "ollama_embed")
        return embeddings.ollama_body(name, reply.vectors, reply.tokens, started, trace.load_s)

    # --- Ollama ---------------------------------------------------------------------

    @get("/api/tags", sync_to_thread=False)
    def ollama_tags() -> dict[str, Any]:
        now = time.monotonic()
        return ollama_api.tags_body(gateway.fleet.catalogue(now), gateway.fleet.aliases(now))

    @get("/api/ps", sync_to_thread=False)
    def ollama_ps() -> dict[str, Any]:
        return ollama_api.ps_body(gateway.fleet.catalogue(time.monotonic()))

    @post("/api/show", status_code=200)
    async def ollama_show(request: Request[Any, Any, Any]) -> dict[str, Any]:
        asked = openai_chat.decode_body(await request.body(), ollama_api.ShowRequest)
        name = asked.model or asked.name
        model = gateway.resolve_model(name)
        return ollama_api.show_body(name, gateway.fleet.catalogue(time.monotonic())[model])

    @get("/api/version", sync_to_thread=False)
    def ollama_version() -> dict[str, Any]:
        return {"version": ollama_api.VERSION}

    @get("/openapi.json", sync_to_thread=False)
    def openapi() -> dict[str, Any]:
        return openapi_document()

    return Litestar(
        route_handlers=[
            openapi,
            health,
            list_models,
            get_model,
            *answering_routes,
            count_tokens,
            openai_embeddings,
            ollama_embed,
            ollama_tags,
            ollama_ps,
            ollama_show,
            ollama_version,
            admin_models,
            admin_status,
            dashboard,
            dashboard_json,
        ],
        before_request=authenticate,
        exception_handlers={
            ApiError: _api_error_handler,
            HTTPException: _http_error_handler,
            Exception: _internal_error_handler,
        },
        request_max_body_size=gateway.settings.max_body_bytes,
        openapi_config=None,
    )
