"""API errors: raised anywhere in the gateway, rendered in one place per dialect."""

from __future__ import annotations

from typing import Any

from cortex_wire.messages import WireError
from cortex_wire.outcomes import OUTCOMES, UNKNOWN, Code, known, outcome
from cortex_wire.verdicts import Refused

# Anthropic error types by status, for errors raised without a code of the outcome table.
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
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type
        self.param = param
        self.retry_after = retry_after
        self.details = details  # Anthropic's machine-readable `error.details`

    @classmethod
    def of(cls, code: Code, message: str, param: str | None = None) -> ApiError:
        """An error as the outcome table says `code` looks to a client."""
        row = outcome(code)
        return cls(
            row.status, message, code=code, type=row.openai_type, param=param,
            retry_after=row.retry_after,
        )  # fmt: skip

    @classmethod
    def from_wire(cls, error: WireError) -> ApiError:
        """A peer's error; a code this gateway does not know (a newer peer's) is a 500
        that keeps its code, and is never retried."""
        code = known(error.code)
        if code is None:
            return cls(500, error.message, code=error.code, type=UNKNOWN.openai_type)
        return cls.of(code, error.message)

    @classmethod
    def refused(cls, refused: Refused) -> ApiError:
        return cls.from_wire(refused.error)

    @classmethod
    def invalid(cls, message: str, param: str | None = None) -> ApiError:
        """The request itself is wrong (a 400 in every dialect's shape)."""
        return cls.of(Code.INVALID_REQUEST, message, param)

    @property
    def retry_elsewhere(self) -> bool:
        """The failure was a neuron's: another replica may serve the request."""
        return outcome(self.code).retry_elsewhere

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
        if self.code in OUTCOMES:
            kind = outcome(self.code).anthropic_type
        else:
            kind = _ANTHROPIC_TYPES.get(
                self.status, "api_error" if self.status >= 500 else "invalid_request_error"
            )
        error: dict[str, Any] = {"type": kind, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"type": "error", "error": error}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after else {}
