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
from cortex_wire.outcomes import Code

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


# The framework's own refusals (a path it has no route for, a body past its limit), as codes.
HTTP_CODES = {
    400: Code.BAD_REQUEST, 401: Code.INVALID_API_KEY, 404: Code.NOT_FOUND,
    405: Code.METHOD_NOT_ALLOWED, 413: Code.REQUEST_TOO_LARGE,
}  # fmt: skip


def http_error_handler(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    code = HTTP_CODES.get(error.status_code)
    if code is None:  # a status the table has no code for keeps its status
        kind = "invalid_request_error" if error.status_code < 500 else "server_error"
        failure = ApiError(error.status_code, str(error.detail), type=kind)
    else:
        failure = ApiError.of(code, str(error.detail))
    return _error_response(request, failure)


def internal_error_handler(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    log.exception("unhandled_error", path=request.url.path)
    failure = ApiError.of(Code.INTERNAL, f"internal error: {type(error).__name__}")
    return _error_response(request, failure)


HANDLERS = {
    ApiError: api_error_handler,
    HTTPException: http_error_handler,
    Exception: internal_error_handler,
}
