"""API errors: raised anywhere in the gateway, rendered in one place per dialect."""

from __future__ import annotations

from typing import Any

from cortex_wire.messages import WireError

# Wire error codes from neurons/scheduler → (HTTP status, OpenAI error type).
_WIRE_STATUS: dict[str, tuple[int, str]] = {
    "model_not_found": (404, "invalid_request_error"),
    "context_length_exceeded": (400, "invalid_request_error"),
    "invalid_request": (400, "invalid_request_error"),
    "bad_request": (400, "invalid_request_error"),
    "overloaded": (429, "rate_limit_error"),
    "no_capacity": (503, "service_unavailable"),
    "load_failed": (503, "service_unavailable"),
    "load_timeout": (503, "service_unavailable"),
    "neuron_unavailable": (503, "service_unavailable"),
    "unloading": (503, "service_unavailable"),
    "model_not_ready": (503, "service_unavailable"),
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
        retry = 1 if error.retryable and status in (429, 503) else None
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

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after else {}
