"""Replies read as tagged unions (pure).

The wire keeps its "ok + optional error" replies, so older and newer peers still read each
other; here each becomes one value of a union to match on — `Admitted | Refused`,
`Ready | Loading | Refused` — with no reply that says "no" without saying why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cortex_wire.messages import EnsureReply, InferReply, WireError
from cortex_wire.outcomes import Code

NO_REASON = "the peer refused without saying why"


@dataclass(frozen=True)
class Refused:
    """What was asked was not done, and why (`error.code` is the outcome table's)."""

    error: WireError

    @classmethod
    def of(cls, code: Code, message: str) -> Refused:
        return cls(WireError(code=code, message=message))

    @property
    def code(self) -> str:
        return self.error.code

    @property
    def message(self) -> str:
        return self.error.message


def refusal(ok: bool, error: WireError | None) -> Refused | None:
    """None when the peer did it; else why not (an error with no ok is still a refusal)."""
    if ok and error is None:
        return None
    return Refused(error or WireError(code=Code.INTERNAL, message=NO_REASON))


@dataclass(frozen=True)
class Admitted:
    """A neuron took an inference request; its frames follow on the stream subject."""

    reasoning_markers: list[str] = field(default_factory=list)
    tool_call_markers: list[str] = field(default_factory=list)


def admission(reply: InferReply) -> Admitted | Refused:
    refused = refusal(reply.accepted, reply.error)
    if refused is not None:
        return refused
    return Admitted(reply.reasoning_markers, reply.tool_call_markers)


@dataclass(frozen=True)
class Ready:
    node: str  # where the model is ready


@dataclass(frozen=True)
class Loading:
    node: str = ""  # where it loads, when the scheduler said


def readiness(reply: EnsureReply) -> Ready | Loading | Refused:
    if reply.loading and reply.error is None:
        return Loading(reply.node)
    refused = refusal(reply.ok, reply.error)
    return Ready(reply.node) if refused is None else refused
