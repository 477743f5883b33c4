"""Every way a request can end other than well, in one table (pure data).

A code travels on the bus (`WireError.code`) and in HTTP error bodies. Per code the table
says what a client should see (HTTP status, OpenAI and Anthropic error types, whether to
send Retry-After) and whether the gateway may try another neuron (the failure was the
node's, not the request's). A code this table does not know (a newer peer's) is a 500,
never retried, so rolling upgrades keep working.
"""

from __future__ import annotations

from dataclasses import dataclass


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
_NODE = Outcome(503, "service_unavailable", "overloaded_error", True, retry_after=1)
_INTERNAL = Outcome(500, "server_error", "api_error")

OUTCOMES: dict[str, Outcome] = {
    # the request itself
    "bad_request": _BAD,
    "invalid_request": _BAD,
    "context_length_exceeded": _BAD,
    "unsupported_parameter": _BAD,
    "wrong_model_kind": _BAD,
    "model_not_found": _MISSING,
    "not_found": _MISSING,
    "method_not_allowed": Outcome(405, "invalid_request_error", "invalid_request_error"),
    "request_too_large": Outcome(413, "invalid_request_error", "request_too_large"),
    "client_too_slow": Outcome(408, "invalid_request_error", "invalid_request_error"),
    # who may ask
    "invalid_api_key": _AUTH,
    "admin_key_required": _FORBIDDEN,
    "admin_disabled": _FORBIDDEN,
    # capacity: wait and ask again
    "overloaded": _BUSY,
    "busy": _BUSY,
    "no_capacity": _UNAVAILABLE,
    "load_failed": _UNAVAILABLE,
    "load_timeout": _UNAVAILABLE,
    "load_cancelled": _UNAVAILABLE,
    "model_not_ready": _UNAVAILABLE,
    "no_neurons": Outcome(503, "service_unavailable", "overloaded_error", retry_after=1),
    "no_scheduler": _UNAVAILABLE,
    "service_unavailable": Outcome(503, "service_unavailable", "overloaded_error", retry_after=1),
    # the neuron failed, not the request: another replica may serve it
    "neuron_unavailable": _NODE,
    "unloading": _NODE,
    "stream_timeout": _NODE,
    "stream_gap": _NODE,
    "decode_failed": _NODE,
    "bad_frame": Outcome(502, "server_error", "api_error", True),  # a neuron of another version?
    # the engine's own trouble
    "stream_overflow": _INTERNAL,
    "embedding_failed": _INTERNAL,
    "internal": _INTERNAL,
}
UNKNOWN = _INTERNAL


def outcome(code: str | None) -> Outcome:
    """The table's row for `code`; an unknown code is an internal error, not retried."""
    return OUTCOMES.get(code or "", UNKNOWN)
