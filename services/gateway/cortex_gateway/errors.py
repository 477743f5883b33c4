"""API errors: raised anywhere in the gateway, rendered in one place per dialect."""

from __future__ import annotations

from typing import Any

from cortex_wire.messages import WireError

# Wire error codes from neurons/scheduler → (HTTP status, OpenAI error type).
_WIRE_STATUS: dict[str, tuple[int, str]] = {
    "model_not_found": (404, "invalid_request_error"),
    "context_length_exceeded": (400, "invalid_request_error"),
    "invalid_request": (400, "invalid_request_error"),
    "wrong_model_kind": (400, "invalid_request_error"),
    "bad_request": (400, "invalid_request_error"),
    "overloaded": (429, "rate_limit_error"),
    "no_capacity": (503, "service_unavailable"),
    "load_failed": (503, "service_unavailable"),
    "load_timeout": (503, "service_unavailable"),
    "neuron_unavailable": (503, "service_unavailable"),
    "unloading": (503, "service_unavailable"),
    "model_not_ready": (503, "service_unavailable"),
}


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        type: str = "invalid_request_error",
        param: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type
        self.param = param
        self.retry_after = retry_after

    @classmethod
    def from_wire(cls, error: WireError) -> ApiError:
        status, kind = _WIRE_STATUS.get(error.code, (500, "server_error"))
        # Capacity frees up: tell clients when to try again.
        retry = {429: 1, 503: 5}.get(status)
        return cls(status, error.message, code=error.code, type=kind, retry_after=retry)

    def openai_body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def anthropic_body(self) -> dict[str, Any]:
        kind = _ANTHROPIC_TYPES.get(
            self.status, "api_error" if self.status >= 500 else "invalid_request_error"
        )
        return {"type": "error", "error": {"type": kind, "message": self.message}}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after else {}
