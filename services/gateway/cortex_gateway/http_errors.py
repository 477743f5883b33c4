"""Errors as HTTP responses: each path answers in its API's envelope (from the route
table), whatever raised them."""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException

from cortex_gateway import (
    ollama_api,
)
from cortex_gateway.errors import ApiError
from cortex_gateway.routes import api_of

log = structlog.get_logger("gateway")


def _error_response(request: Request[Any, Any, Any], error: ApiError) -> Response[Any]:
    api = api_of(request.url.path)
    body = {
        "ollama": ollama_api.error_body,
        "anthropic": ApiError.anthropic_body,
        "openai": ApiError.openai_body,
    }[api](error)
    return Response(body, status_code=error.status, headers=error.headers())


def api_error_handler(request: Request[Any, Any, Any], error: ApiError) -> Response[Any]:
    return _error_response(request, error)


def http_error_handler(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    kind = "invalid_request_error" if error.status_code < 500 else "server_error"
    code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
        error.status_code
    )
    return _error_response(
        request, ApiError(error.status_code, str(error.detail), code=code, type=kind)
    )


def internal_error_handler(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    log.exception("unhandled_error", path=request.url.path)
    failure = ApiError(500, f"internal error: {type(error).__name__}", type="server_error")
    return _error_response(request, failure)


HANDLERS = {
    ApiError: api_error_handler,
    HTTPException: http_error_handler,
    Exception: internal_error_handler,
}
