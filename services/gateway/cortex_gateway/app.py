"""HTTP routes (Litestar): a thin shell over the pure translation modules and the bus."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from litestar import Litestar, MediaType, Request, Response, delete, get, head, post, route
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery
from litestar.response import Stream

from cortex_gateway import (
    anthropic_request,
    embeddings,
    ollama_api,
    openai_chat,
    openai_responses,
    residency,
    tokenizer_api,
)
from cortex_gateway.answering import answer, counted_load, id_headers, next_request_id
from cortex_gateway.auth import check_access, presented_key
from cortex_gateway.dashboard import dashboard_data
from cortex_gateway.errors import ApiError
from cortex_gateway.gateway_state import (
    ANTHROPIC_MAX_PAGE,
    ANTHROPIC_PAGE,
    LATEST,
    Gateway,
    anthropic_models_page,
)
from cortex_gateway.http_errors import HANDLERS
from cortex_gateway.metrics import RequestTrace
from cortex_gateway.openapi import openapi_document
from cortex_gateway.routes import ROUTES, Route
from cortex_wire import codec, subjects
from cortex_wire.messages import (
    ChatMessage,
    EmbedReply,
    EmbedRequest,
    FleetStatus,
    InferRequest,
    ModelRef,
    Usage,
    VocabReply,
    VocabRequest,
)
from cortex_wire.outcomes import Code
from cortex_wire.verdicts import Refused

log = structlog.get_logger("gateway")
DASHBOARD_PAGE = (Path(__file__).parent / "dashboard.html").read_text()
IDENTITY = "cortex is running: OpenAI (/v1), Anthropic (/v1/messages) and Ollama (/api) APIs\n"
# The anthropic SDK sends it with every request (the openai SDK never does): /v1/models then
# answers in Anthropic's shape.
ANTHROPIC_VERSION = "anthropic-version"


def _page_limit(text: str | None) -> int:
    """Anthropic's `limit` query parameter (a page's size): a whole number, or a 400."""
    if text is None:
        return ANTHROPIC_PAGE
    try:
        return int(text)
    except ValueError:
        raise ApiError.invalid(
            f"limit must be a whole number from 1 to {ANTHROPIC_MAX_PAGE}, not {text!r}",
            param="limit",
        ) from None


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
            return {"ok": True, "model": model, "node": await gateway.make_ready(model, node)}
        subject = {"unload": subjects.SCHED_UNLOAD, "pin": subjects.SCHED_PIN,
                   "unpin": subjects.SCHED_UNPIN}.get(operation)  # fmt: skip
        if subject is None:
            raise ApiError.of(Code.NOT_FOUND, f"unknown admin operation {operation!r}")
        return {"ok": True, "model": model, "detail": await gateway.operate(subject, model, node)}

    @get("/dashboard", media_type=MediaType.HTML, sync_to_thread=False)
    def dashboard() -> str:
        return DASHBOARD_PAGE

    @get("/dashboard/data", sync_to_thread=False)
    def dashboard_json() -> dict[str, Any]:
        now = time.time()
        return dashboard_data(gateway.fleet, gateway.recent.window(now), time.monotonic(), now)

    @get("/admin/status")
    async def admin_status() -> Response[Any]:
        status = await gateway.ask_scheduler(subjects.SCHED_STATUS, ModelRef(model=""), FleetStatus)
        return Response(codec.encode(status), media_type=MediaType.JSON)

    @get("/", media_type=MediaType.TEXT, sync_to_thread=False)
    def root() -> str:
        """Who answers here (clients such as Claude Code probe the root first)."""
        return IDENTITY

    @head("/", sync_to_thread=False)
    def root_head() -> None:
        return None

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

    def anthropic_answer(body: dict[str, Any]) -> Response[Any]:
        """/v1/models in Anthropic's shape, with the id its SDK reads (`request-id`)."""
        return Response(body, headers=id_headers(f"req_{next_request_id()}"))

    @get("/v1/models", sync_to_thread=False)
    def list_models(request: Request[Any, Any, Any]) -> Response[Any]:
        """OpenAI's list; Anthropic's pages (limit, after_id, before_id) for its SDK. The
        query is read here, so that a bad `limit` is refused in Anthropic's shape."""
        if ANTHROPIC_VERSION not in request.headers:
            return Response(gateway.models_body())
        query = request.query_params  # (a refusal is in Anthropic's shape: http_errors)
        limit = _page_limit(query.get("limit"))
        page = anthropic_models_page(
            gateway.anthropic_models(), limit, query.get("after_id") or "",
            query.get("before_id") or "",
        )  # fmt: skip
        return anthropic_answer(page)

    @get("/v1/models/{model_id:path}", sync_to_thread=False)
    def get_model(model_id: FromPath[str], request: Request[Any, Any, Any]) -> Response[Any]:
        name = model_id.lstrip("/")
        anthropic = ANTHROPIC_VERSION in request.headers
        entries = gateway.anthropic_models() if anthropic else gateway.models_body()["data"]
        # `x:latest` names `x` wherever a request may use it (clients that listed models
        # through /api/tags use the tagged names on every route).
        bare = name.removesuffix(LATEST)
        found = [e for e in entries if e["id"] == name] or [e for e in entries if e["id"] == bare]
        target = None if found else gateway.served_model(name)  # a pattern alias's match
        if target is not None:
            found = [{**e, "id": name} for e in entries if e["id"] == target]
            if found and not anthropic:
                found[0]["alias_for"] = target
        if found:
            entry = dict(found[0])
            return anthropic_answer(entry) if anthropic else Response(entry)
        raise ApiError.of(
            Code.MODEL_NOT_FOUND, f"The model `{name}` does not exist.", param="model"
        )

    def answering(route: Route) -> Any:
        """The handler of a route that answers through the projection core."""
        assert route.turn is not None
        to_turn = route.turn

        async def handler(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
            turn = to_turn(await request.body(), settings)
            if route.api == "ollama":  # Ollama refuses tools or thinking a model lacks
                model = gateway.resolve_model(turn.model)
                gateway.check_kind(model, embedding=False)
                ollama_api.check_capabilities(turn, gateway.capabilities(model))
            return await answer(gateway, request, turn)

        return post(route.path, status_code=200, name=route.path)(handler)

    answering_routes = [answering(route) for route in ROUTES if route.turn is not None]

    @post("/v1/messages/count_tokens", status_code=200)
    async def count_tokens(request: Request[Any, Any, Any]) -> Response[Any]:
        """The prompt as /v1/messages would render it, counted by the model's tokenizer."""
        counted = anthropic_request.parse_count(await request.body())
        request_id = f"count-{next_request_id()}"
        infer = InferRequest(
            request_id=request_id,
            model=gateway.resolve_model(counted.model),
            stream_subject="",
            **anthropic_request.template_fields(counted, settings.strip_billing_header),
        )
        tokens = await gateway.inference.count_tokens(infer)
        if isinstance(tokens, Refused):
            raise ApiError.refused(tokens)
        return Response({"input_tokens": tokens}, headers=id_headers(request_id))

    def embedding_id() -> str:
        return f"emb-{next_request_id()}"

    async def embed(
        ask: embeddings.EmbedAsk, route: str, request_id: str
    ) -> tuple[EmbedReply, RequestTrace]:
        model = gateway.resolve_model(ask.model)
        gateway.check_kind(model, embedding=True)
        trace = RequestTrace(
            gateway.metrics, model, route, gateway.publish_record, request_id, gateway.name
        )
        embedded = await gateway.inference.embed(
            EmbedRequest(request_id=request_id, model=model, input=ask.texts, truncate=ask.truncate)
        )
        if isinstance(embedded, Refused):
            trace.finish(embedded.code)
            raise ApiError.refused(embedded)
        node, reply = embedded
        trace.accepted(node, False, 0.0)
        trace.finish("ok", Usage(prompt_tokens=reply.tokens))
        return reply, trace

    @post("/v1/embeddings", status_code=200)
    async def openai_embeddings(request: Request[Any, Any, Any]) -> Response[Any]:
        ask = embeddings.openai_request(await request.body())
        request_id = embedding_id()
        reply, _ = await embed(ask, "embeddings", request_id)
        body = embeddings.openai_body(ask.model, reply.vectors, reply.tokens, ask.encoding)
        return Response(body, headers=id_headers(request_id))

    async def kept(
        request: Request[Any, Any, Any],
        ask: embeddings.EmbedAsk,
        request_id: str,
        body: Callable[[], Awaitable[dict[str, Any]]],
    ) -> Response[Any]:
        """An Ollama embedding answer, with its keep_alive carried out around it."""
        model = gateway.resolve_model(ask.model)
        await residency.before(gateway, request, model, ask.residency)
        answered = Response(await body(), headers=id_headers(request_id))
        return residency.after(gateway, model, ask.residency, answered)

    async def loaded_only(ask: embeddings.EmbedAsk, route: str, request_id: str) -> None:
        """Nothing to embed: load the model, as Ollama does (a request all the same)."""
        model = gateway.resolve_model(ask.model)
        gateway.check_kind(model, embedding=True)
        await counted_load(gateway, model, route, request_id, True, gateway.make_ready(model))

    @post("/api/embed", status_code=200)
    async def ollama_embed(request: Request[Any, Any, Any]) -> Response[Any]:
        started = time.perf_counter()
        ask = embeddings.ollama_request(await request.body())
        request_id = embedding_id()

        async def body() -> dict[str, Any]:
            if not ask.texts:
                await loaded_only(ask, "ollama_embed", request_id)
                return embeddings.ollama_body(ask.model, [], 0, started, 0.0)
            reply, trace = await embed(ask, "ollama_embed", request_id)
            return embeddings.ollama_body(
                ask.model, reply.vectors, reply.tokens, started, trace.load_s
            )

        return await kept(request, ask, request_id, body)

    @post("/api/embeddings", status_code=200)
    async def ollama_embeddings_legacy(request: Request[Any, Any, Any]) -> Response[Any]:
        ask = embeddings.ollama_legacy_request(await request.body())
        request_id = embedding_id()

        async def body() -> dict[str, Any]:
            if not ask.texts:
                await loaded_only(ask, "ollama_embed", request_id)
                return {"embedding": []}
            reply, _ = await embed(ask, "ollama_embed", request_id)
            return {"embedding": reply.vectors[0]}

        return await kept(request, ask, request_id, body)

    # --- stored responses ----------------------------------------------------------------

    @post("/v1/responses", status_code=200)
    async def responses(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        parsed = openai_responses.parse_request(await request.body())
        history: list[ChatMessage] = []
        if parsed.previous_response_id:
            previous = await gateway.responses.get(
                parsed.previous_response_id, param="previous_response_id"
            )
            history = previous.conversation
        turn = openai_responses.turn(parsed, history, gateway.responses.put)
        while True:
            try:
                return await answer(gateway, request, turn)
            except ApiError as error:
                shorter = (
                    openai_responses.without_oldest_turn(turn.ask.messages or [])
                    if parsed.truncation == "auto" and error.code == Code.CONTEXT_LENGTH_EXCEEDED
                    else None
                )
                if shorter is None:
                    raise
                turn = dataclasses.replace(
                    turn, ask=dataclasses.replace(turn.ask, messages=shorter)
                )

    @get("/v1/responses/{response_id:str}")
    async def stored_response(response_id: FromPath[str]) -> dict[str, Any]:
        return (await gateway.responses.get(response_id)).body

    @get("/v1/responses/{response_id:str}/input_items")
    async def response_input_items(
        response_id: FromPath[str], order: FromQuery[str] = "desc", limit: FromQuery[int] = 20,
        after: FromQuery[str] = "",
    ) -> dict[str, Any]:  # fmt: skip
        stored = await gateway.responses.get(response_id)
        return openai_responses.input_items_page(stored.input_items, order, limit, after)

    @delete("/v1/responses/{response_id:str}", status_code=200)
    async def delete_response(response_id: FromPath[str]) -> dict[str, Any]:
        await gateway.responses.delete(response_id)
        return {"id": response_id, "object": "response", "deleted": True}

    # --- the model's tokenizer (vLLM's and llama-server's endpoints) ---------------------

    async def vocab(ask: VocabRequest) -> VocabReply:
        ask.model = gateway.model_or_only(ask.model)
        gateway.check_kind(ask.model, embedding=False)
        reply = await gateway.inference.vocab(ask)
        if isinstance(reply, Refused):
            raise ApiError.refused(reply)
        return reply

    @post("/tokenize", status_code=200)
    async def tokenize(request: Request[Any, Any, Any]) -> dict[str, Any]:
        body = await request.body()
        ask = tokenizer_api.tokenize_request(body, f"tok-{next_request_id()}")
        return tokenizer_api.tokenize_body(await vocab(ask))

    @post("/detokenize", status_code=200)
    async def detokenize(request: Request[Any, Any, Any]) -> dict[str, Any]:
        body = await request.body()
        ask = tokenizer_api.detokenize_request(body, f"tok-{next_request_id()}")
        return tokenizer_api.detokenize_body(await vocab(ask))

    @get("/tokenizer_info")
    async def tokenizer_info(model: FromQuery[str] = "") -> dict[str, Any]:
        ask = VocabRequest(request_id=f"tok-{next_request_id()}", model=model)
        reply = await vocab(ask)
        return tokenizer_api.info_body(ask.model, reply)

    # --- Ollama ---------------------------------------------------------------------

    @get("/api/tags", sync_to_thread=False)
    def ollama_tags() -> dict[str, Any]:
        now = time.monotonic()
        return ollama_api.tags_body(gateway.fleet.catalogue(now), gateway.fleet.aliases(now))

    @head(["/api/tags", "/api/version"], sync_to_thread=False)
    def ollama_head() -> None:
        """Clients check that an Ollama server answers with HEAD."""
        return None

    @get("/api/ps", sync_to_thread=False)
    def ollama_ps() -> dict[str, Any]:
        now = time.monotonic()
        live = gateway.fleet.live(now)
        on_gpu = {v.node for v in live if any(d.kind == "cuda" for d in v.heartbeat.devices)}
        return ollama_api.ps_body(gateway.fleet.catalogue(now), gateway.fleet.aliases(now), on_gpu)

    @post("/api/show", status_code=200)
    async def ollama_show(request: Request[Any, Any, Any]) -> dict[str, Any]:
        asked = openai_chat.decode_body(await request.body(), ollama_api.ShowRequest)
        name = ollama_api.required_model(asked.model or asked.name)
        model = gateway.resolve_model(name)
        return ollama_api.show_body(name, gateway.fleet.catalogue(time.monotonic())[model])

    @get("/api/version", sync_to_thread=False)
    def ollama_version() -> dict[str, Any]:
        return {"version": ollama_api.VERSION}

    @post("/api/pull", status_code=200)
    async def ollama_pull(request: Request[Any, Any, Any]) -> Response[Any]:
        """A model a neuron's catalogue holds is there already: Ollama's success lines.
        One no catalogue holds is Ollama's 404 (cortex downloads nothing)."""
        asked = openai_chat.decode_body(await request.body(), ollama_api.PullRequest)
        model = gateway.resolve_model(ollama_api.required_model(asked.model or asked.name))
        entry = gateway.fleet.catalogue(time.monotonic())[model].entry
        media_type = ollama_api.NDJSON if asked.stream else MediaType.JSON
        return Response(ollama_api.pull_body(entry, asked.stream), media_type=media_type)

    managing = ["/api/push", "/api/create", "/api/copy", "/api/delete",
                "/api/blobs/{digest:str}"]  # fmt: skip

    @route(managing, http_method=["POST", "DELETE"], status_code=501, sync_to_thread=False)
    def ollama_managing(request: Request[Any, Any, Any]) -> None:
        """What Ollama does with its own model store: not here (a 501 saying what is)."""
        raise ollama_api.not_supported(request.url.path)

    @head("/api/blobs/{digest:str}", status_code=501, sync_to_thread=False)
    def ollama_blob_head(request: Request[Any, Any, Any]) -> None:
        raise ollama_api.not_supported(request.url.path)

    @get("/openapi.json", sync_to_thread=False)
    def openapi() -> dict[str, Any]:
        return openapi_document()

    return Litestar(
        route_handlers=[
            openapi,
            root,
            root_head,
            health,
            list_models,
            get_model,
            *answering_routes,
            responses,
            stored_response,
            response_input_items,
            delete_response,
            count_tokens,
            openai_embeddings,
            ollama_embed,
            ollama_embeddings_legacy,
            tokenize,
            detokenize,
            tokenizer_info,
            ollama_tags,
            ollama_ps,
            ollama_show,
            ollama_version,
            ollama_head,
            ollama_pull,
            ollama_managing,
            ollama_blob_head,
            admin_models,
            admin_status,
            dashboard,
            dashboard_json,
        ],
        before_request=authenticate,
        exception_handlers=HANDLERS,  # type: ignore[arg-type]
        request_max_body_size=gateway.settings.max_body_bytes,
        openapi_config=None,
        state=State({"gateway": gateway}),  # the error handlers count refusals on its metrics
    )
