"""The one event stream every answer is told in, and the answer it adds up to (pure).

A request's bus frames become these events once (`translate.py`); every dialect then
encodes the events for a streaming client and builds its whole body from the `Answer` the
same events add up to, so a streamed answer and a whole one cannot drift apart.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal, TypeAlias

from cortex_gateway.tool_calls import ParsedCall
from cortex_wire.messages import Timings, TokenLogprob, Usage


class Stop(StrEnum):
    """Why an answer ended; each dialect has its own word for each."""

    END = "end"  # the model ended its turn
    STOP_SEQUENCE = "stop_sequence"  # one of the request's stop sequences
    LENGTH = "length"  # max_tokens
    CONTEXT_FULL = "context_full"  # the context had no room for another token
    TOOL_CALLS = "tool_calls"  # it called tools and waits for their results
    CANCELLED = "cancelled"


# The answer was cut off by a limit, not ended by the model.
CUT_SHORT = frozenset({Stop.LENGTH, Stop.CONTEXT_FULL})


@dataclass(frozen=True)
class Started:
    """A neuron took the request (the first event, before any of the answer)."""

    node: str
    cold_start: bool = False  # it waited for a model load
    load_s: float = 0.0


@dataclass(frozen=True)
class Waiting:
    """Nothing new yet (a load, a queue, a long prefill): a keep-alive for the client."""


@dataclass(frozen=True)
class Text:
    text: str
    # The answer tokens it came from, scored (when the request asked for log probabilities).
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class PromptScored:
    """Every prompt token with its log probability (the first has none), before the
    answer: for APIs that echo the prompt."""

    logprobs: tuple[TokenLogprob, ...]


@dataclass(frozen=True)
class Reasoning:
    text: str


@dataclass(frozen=True)
class CallOpened:
    call: ParsedCall  # its id and name; arguments still empty


@dataclass(frozen=True)
class CallArguments:
    call: ParsedCall  # as it stands, `text` included
    text: str


@dataclass(frozen=True)
class CallClosed:
    call: ParsedCall  # whole: its arguments are the JSON text of an object


@dataclass(frozen=True)
class Finished:
    stop: Stop
    usage: Usage
    timings: Timings = field(default_factory=Timings)
    stop_sequence: str = ""
    end_logprob: TokenLogprob | None = None  # the end token the model sampled, scored


@dataclass(frozen=True)
class Failure:
    """The request failed; `code` is the outcome table's."""

    code: str
    message: str


Event: TypeAlias = (
    Started | Waiting | Text | Reasoning | CallOpened | CallArguments | CallClosed | Finished
    | Failure | PromptScored
)  # fmt: skip
WAITING = Waiting()


@dataclass
class Part:
    """One stretch of the answer: text, reasoning, or a call. `id` is unique, for dialects
    that name their output items."""

    kind: Literal["text", "reasoning", "call"]
    text: str = ""
    call: ParsedCall | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])
    logprobs: list[TokenLogprob] = field(default_factory=list)  # a text part's, scored


@dataclass
class Answer:
    """What the events of one request add up to, in order."""

    parts: list[Part] = field(default_factory=list)
    started: Started | None = None
    finished: Finished | None = None
    prompt_logprobs: list[TokenLogprob] = field(default_factory=list)

    def add(self, event: Event) -> None:
        if isinstance(event, Started):
            self.started = event
        elif isinstance(event, PromptScored):
            self.prompt_logprobs += event.logprobs
        elif isinstance(event, Text | Reasoning):
            kind: Literal["text", "reasoning"] = "text" if isinstance(event, Text) else "reasoning"
            if not (self.parts and self.parts[-1].kind == kind):
                self.parts.append(Part(kind))
            self.parts[-1].text += event.text
            if isinstance(event, Text):
                self.parts[-1].logprobs += event.logprobs
        elif isinstance(event, CallOpened):
            self.parts.append(Part("call", call=event.call))
        elif isinstance(event, CallArguments | CallClosed):
            self.parts[-1].call = event.call
        elif isinstance(event, Finished):
            self.finished = event

    @property
    def text(self) -> str:
        return "".join(part.text for part in self.parts if part.kind == "text")

    @property
    def logprobs(self) -> list[TokenLogprob]:
        """The answer's tokens, scored (those of its text parts, in order)."""
        return [entry for part in self.parts if part.kind == "text" for entry in part.logprobs]

    @property
    def reasoning(self) -> str:
        return "".join(part.text for part in self.parts if part.kind == "reasoning")

    @property
    def calls(self) -> list[ParsedCall]:
        return [part.call for part in self.parts if part.call is not None]

    @property
    def usage(self) -> Usage:
        return self.finished.usage if self.finished else Usage()

    def visible(self, reasoning: bool) -> list[Part]:
        """The parts a client sees when reasoning is shown or not: with it hidden, the text
        on both sides of it is one stretch (as a streaming client saw it)."""
        parts: list[Part] = []
        for part in self.parts:
            if part.kind == "reasoning" and not reasoning:
                continue
            if parts and part.kind == "text" and parts[-1].kind == "text":
                parts[-1] = replace(parts[-1], text=parts[-1].text + part.text)
            else:
                parts.append(part)
        return parts
