"""Every way a request can end other than well, in one table (pure data).

A code travels on the bus (`WireError.code`) and in HTTP error bodies. Per code the table
says what a client should see (HTTP status, OpenAI and Anthropic error types, whether to
send Retry-After) and whether the gateway may try another neuron (the failure was the
node's, not the request's). A code this table does not know (a newer peer's) is a 500,
never retried, so rolling upgrades keep working.

Adding a failure mode is one member of `Code` and one row of `OUTCOMES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Code(StrEnum):
    # the request itself
    BAD_REQUEST = "bad_request"
    INVALID_REQUEST = "invalid_request"
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    UNSUPPORTED_PARAMETER = "unsupported_parameter"
    WRONG_MODEL_KIND = "wrong_model_kind"
    MODEL_NOT_FOUND = "model_not_found"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_TOO_LARGE = "request_too_large"
    CLIENT_TOO_SLOW = "client_too_slow"
    # the client went away before its answer (counted, never answered: nobody reads it)
    CANCELLED = "cancelled"
    # the fleet's state forbids it until an operator changes that state
    MODEL_PINNED = "model_pinned"
    # who may ask
    INVALID_API_KEY = "invalid_api_key"
    ADMIN_KEY_REQUIRED = "admin_key_required"
    ADMIN_DISABLED = "admin_disabled"
    # capacity: wait and ask again
    OVERLOADED = "overloaded"
    BUSY = "busy"
    NO_CAPACITY = "no_capacity"
    LOAD_FAILED = "load_failed"
    LOAD_TIMEOUT = "load_timeout"
    LOAD_CANCELLED = "load_cancelled"
    MODEL_NOT_READY = "model_not_ready"
    NO_NEURONS = "no_neurons"
    NO_SCHEDULER = "no_scheduler"
    SCHEDULER_TIMEOUT = "scheduler_timeout"
    SERVICE_UNAVAILABLE = "service_unavailable"
    # the neuron failed, not the request: another replica may serve it
    NEURON_UNAVAILABLE = "neuron_unavailable"
    UNLOADING = "unloading"
    STREAM_TIMEOUT = "stream_timeout"
    STREAM_GAP = "stream_gap"
    DECODE_FAILED = "decode_failed"
    BAD_FRAME = "bad_frame"
    # the engine's (or the gateway's) own trouble
    STREAM_INCOMPLETE = "stream_incomplete"
    STREAM_OVERFLOW = "stream_overflow"
    EMBEDDING_FAILED = "embedding_failed"
    INTERNAL = "internal"


@dataclass(frozen=True)
class Outcome:
    status: int
    openai_type: str
    anthropic_type: str
    retry_elsewhere: bool = False  # another neuron may well succeed
    retry_after: int | None = None  # seconds a client should wait before asking again


_BAD = Outcome(400, "invalid_request_error", "invalid_request_error")
_AUTH = Outcome(401, "authentication_error", "authentication_error")
_FORBIDDEN = Outcome(403, "permission_error", "permission_error")
_MISSING = Outcome(404, "invalid_request_error", "not_found_error")
_BUSY = Outcome(429, "rate_limit_error", "rate_limit_error", retry_after=1)
_UNAVAILABLE = Outcome(503, "service_unavailable", "overloaded_error", retry_after=5)
_SOON = Outcome(503, "service_unavailable", "overloaded_error", retry_after=1)
_NODE = Outcome(503, "service_unavailable", "overloaded_error", True, retry_after=1)
_INTERNAL = Outcome(500, "server_error", "api_error")

OUTCOMES: dict[Code, Outcome] = {
    Code.BAD_REQUEST: _BAD,
    Code.INVALID_REQUEST: _BAD,
    Code.CONTEXT_LENGTH_EXCEEDED: _BAD,
    Code.UNSUPPORTED_PARAMETER: _BAD,
    Code.WRONG_MODEL_KIND: _BAD,
    Code.MODEL_NOT_FOUND: _MISSING,
    Code.NOT_FOUND: _MISSING,
    Code.METHOD_NOT_ALLOWED: Outcome(405, "invalid_request_error", "invalid_request_error"),
    Code.REQUEST_TOO_LARGE: Outcome(413, "invalid_request_error", "request_too_large"),
    Code.CLIENT_TOO_SLOW: Outcome(408, "invalid_request_error", "invalid_request_error"),
    # nginx's "client closed request"
    Code.CANCELLED: Outcome(499, "invalid_request_error", "invalid_request_error"),
    # Unloading a pinned model: 409 Conflict (neither dialect has a conflict type).
    Code.MODEL_PINNED: Outcome(409, "invalid_request_error", "invalid_request_error"),
    Code.INVALID_API_KEY: _AUTH,
    Code.ADMIN_KEY_REQUIRED: _FORBIDDEN,
    Code.ADMIN_DISABLED: _FORBIDDEN,
    Code.OVERLOADED: _BUSY,
    Code.BUSY: _BUSY,
    Code.NO_CAPACITY: _UNAVAILABLE,
    Code.LOAD_FAILED: _UNAVAILABLE,
    Code.LOAD_TIMEOUT: _UNAVAILABLE,
    Code.LOAD_CANCELLED: _UNAVAILABLE,
    Code.MODEL_NOT_READY: _UNAVAILABLE,
    Code.NO_NEURONS: _SOON,
    Code.NO_SCHEDULER: _UNAVAILABLE,
    Code.SCHEDULER_TIMEOUT: Outcome(504, "server_error", "api_error"),
    Code.SERVICE_UNAVAILABLE: _SOON,
    Code.NEURON_UNAVAILABLE: _NODE,
    Code.UNLOADING: _NODE,
    Code.STREAM_TIMEOUT: _NODE,
    Code.STREAM_GAP: _NODE,
    Code.DECODE_FAILED: _NODE,
    Code.BAD_FRAME: Outcome(502, "server_error", "api_error", True),  # a neuron of another version
    Code.STREAM_INCOMPLETE: Outcome(502, "server_error", "api_error"),
    Code.STREAM_OVERFLOW: _INTERNAL,
    Code.EMBEDDING_FAILED: _INTERNAL,
    Code.INTERNAL: _INTERNAL,
}
UNKNOWN = _INTERNAL


def known(code: str | None) -> Code | None:
    """`code` as a member of the table, or None for one it does not know."""
    try:
        return Code(code or "")
    except ValueError:
        return None


def outcome(code: str | None) -> Outcome:
    """The table's row for `code`; an unknown code is an internal error, not retried."""
    member = known(code)
    return UNKNOWN if member is None else OUTCOMES[member]
