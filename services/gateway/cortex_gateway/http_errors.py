"""Errors as HTTP responses: each path answers in its API's envelope (from the route
table), whatever raised them.

A request to an inference route that ends in an error is accounted for here, once: it
answers with the request's id (`request-id`, `x-request-id`, and Anthropic's `request_id`
in the body), leaves one log line, and, unless a RequestTrace already counted it (a refusal
after a neuron was asked), is counted in `cortex_requests_total` by its outcome code."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.utils.scope.state import ScopeState

from cortex_gateway import (
    ollama_api,
)
from cortex_gateway.answering import id_headers, next_request_id
from cortex_gateway.errors import ApiError
from cortex_gateway.gateway_state import Gateway
from cortex_gateway.metrics import count_refused, counted_request
from cortex_gateway.routes import api_of
from cortex_wire.outcomes import Code

log = structlog.get_logger("gateway")

# The inference routes by path, with the route label their requests are counted under.
INFERENCE_ROUTES = {
    "/v1/chat/completions": "chat", "/v1/completions": "completions",
    "/v1/responses": "responses", "/v1/messages": "messages",
    "/v1/messages/count_tokens": "count_tokens", "/v1/embeddings": "embeddings",
    "/api/chat": "ollama_chat", "/api/generate": "ollama_generate",
    "/api/embed": "ollama_embed", "/api/embeddings": "ollama_embed",
}  # fmt: skip
# Routes whose answers are not counted at all (their successes are not either).
UNCOUNTED = frozenset({"count_tokens"})


class _Named(msgspec.Struct):
    """The one field of a request body the error path reads: the model it names."""

    model: str = ""


def _model_label(gateway: Gateway, request: Request[Any, Any, Any]) -> str:
    """The catalogue's id of the model the request's body names, or "" (no body read yet,
    one that does not parse, a model not served): never a name a client made up."""
    body = ScopeState.from_scope(request.scope).body
    if not isinstance(body, bytes) or not body:
        return ""
    try:
        name = msgspec.json.decode(body, type=_Named).model
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # hostile bodies
        return ""
    return gateway.served_model(name) or ""


def _account(request: Request[Any, Any, Any], route: str, error: ApiError, unhandled: bool) -> str:
    """Count (if no trace did) and log the failed request; its id."""
    outcome = error.code or "error"
    request_id = counted_request()
    if request_id is None:
        request_id = f"req_{next_request_id()}"
        gateway = request.app.state.get("gateway")
        if isinstance(gateway, Gateway) and route not in UNCOUNTED:
            count_refused(
                gateway.metrics, _model_label(gateway, request), route, outcome,
                gateway.publish_record, request_id, gateway.name,
            )  # fmt: skip
    fields = {"request_id": request_id, "route": route, "status": error.status, "code": outcome}
    if unhandled:  # with its traceback
        log.exception("unhandled_error", path=request.url.path, **fields)
    elif error.status >= 500:
        log.warning("request_failed", **fields, error=error.message)
    else:
        log.info("request_failed", **fields, error=error.message)
    return request_id


# Refusals that may pass if the same request comes again: a timeout, a conflict, a limit.
RETRYABLE = frozenset({408, 409, 429})


def _error_response(
    request: Request[Any, Any, Any], error: ApiError, unhandled: bool = False
) -> Response[Any]:
    api = api_of(request.url.path, anthropic_client="anthropic-version" in request.headers)
    body = {
        "ollama": ollama_api.error_body,
        "anthropic": ApiError.anthropic_body,
        "openai": ApiError.openai_body,
    }[api](error)
    headers = error.headers()
    if error.status < 500 and error.status not in RETRYABLE:
        # The same request would fail again: SDKs (and Claude Code, which retries a 401
        # for minutes) read this header before their own rules.
        headers["x-should-retry"] = "false"
    route = INFERENCE_ROUTES.get(request.url.path)
    request_id = (
        _account(request, route, error, unhandled) if route is not None
        else f"req_{next_request_id()}" if api == "anthropic"  # (its SDK shows the id)
        else None
    )  # fmt: skip
    if request_id is not None:
        headers.update(id_headers(request_id))
        if api == "anthropic":
            body["request_id"] = request_id
    return Response(body, status_code=error.status, headers=headers)


def api_error_handler(request: Request[Any, Any, Any], error: ApiError) -> Response[Any]:
    return _error_response(request, error)


# The framework's own refusals (a path it has no route for, a body past its limit), as codes.
HTTP_CODES = {
    400: Code.BAD_REQUEST, 401: Code.INVALID_API_KEY, 404: Code.NOT_FOUND,
    405: Code.METHOD_NOT_ALLOWED, 413: Code.REQUEST_TOO_LARGE,
}  # fmt: skip


# Litestar's words (a 500) when the client hangs up before its body has all arrived.
CLIENT_GONE = "client disconnected prematurely"


def http_error_handler(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    if error.status_code == 500 and error.detail == CLIENT_GONE:
        # Nobody reads the answer: the request is counted as a cancelled one, not a failure.
        gone = ApiError.of(
            Code.CANCELLED, "the client closed the connection before its body arrived"
        )
        return _error_response(request, gone)
    code = HTTP_CODES.get(error.status_code)
    detail = _routing_detail(request, error)
    if code is None:  # a status the table has no code for keeps its status
        kind = "invalid_request_error" if error.status_code < 500 else "server_error"
        failure = ApiError(error.status_code, detail, type=kind)
    else:
        failure = ApiError.of(code, detail)
    return _error_response(request, failure)


def _routing_detail(request: Request[Any, Any, Any], error: HTTPException) -> str:
    """The framework's words, or for a path or method it has no route for, what is wrong
    (a client of an API cortex does not serve, /v1/files say, learns so)."""
    where = f"{request.method} {request.url.path}"
    if error.status_code == 404 and error.detail == "Not Found":
        return f"{where}: no such route here (cortex's routes are listed at /openapi.json)"
    if error.status_code == 405 and error.detail == "Method Not Allowed":
        return f"{where}: the method is not allowed on this route"
    gateway = request.app.state.get("gateway")
    if error.status_code == 413 and isinstance(gateway, Gateway):
        limit = gateway.settings.max_body_bytes
        return f"the request body is over the gateway's limit of {limit} bytes (max_body_bytes)"
    return str(error.detail)


def internal_error_handler(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    if request.url.path not in INFERENCE_ROUTES:  # those log it with their request's id
        log.exception("unhandled_error", path=request.url.path)
    failure = ApiError.of(Code.INTERNAL, f"internal error: {type(error).__name__}")
    return _error_response(request, failure, unhandled=True)


HANDLERS = {
    ApiError: api_error_handler,
    HTTPException: http_error_handler,
    Exception: internal_error_handler,
}
