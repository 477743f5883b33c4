"""From the neuron's frames to one dialect's answer, streamed or whole.

The frames become the gateway's one event stream (`translate.py`), and the events add up
to an `Answer` (`events.py`). A dialect's `Reply` is two pieces on that core: an encoder
that turns each event into the bytes a streaming client gets, and a body builder that
turns the whole Answer into the response a non-streaming client gets.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from cortex_gateway.errors import ApiError
from cortex_gateway.events import Answer, Event, Failure, Finished, Started, Text, Waiting
from cortex_gateway.inference import StreamItem
from cortex_gateway.keep_alive import Residency
from cortex_gateway.metrics import RequestTrace
from cortex_gateway.translate import Translator
from cortex_wire.messages import ChatMessage, SamplingParams, Usage, WireError
from cortex_wire.outcomes import Code

log = structlog.get_logger("gateway")


@dataclass
class CallInfo:
    """What every dialect needs to know about the request it answers."""

    request_id: str
    model: str  # as the client named it (an alias stays an alias)
    trace: RequestTrace
    created: int = field(default_factory=lambda: int(time.time()))
    stream: bool = False
    inline_thinking: bool = False  # the client asked for reasoning inline
    started_at: float = field(default_factory=time.perf_counter)
    # Which of the request's `choices` answers (OpenAI's n) this one is.
    choice: int = 0
    choices: int = 1


class Encoder(Protocol):
    """A dialect's stream: the bytes for each event (called after `answer` took it in)."""

    def opening(self) -> list[bytes]: ...

    def encode(self, event: Event, answer: Answer) -> list[bytes]: ...

    def failure(self, error: ApiError, answer: Answer) -> list[bytes]: ...


@dataclass(frozen=True)
class Reply:
    """How a dialect answers (see the module docstring)."""

    encoder: Callable[[CallInfo], Encoder]
    body: Callable[[Answer, CallInfo], dict[str, Any]]
    call_id_prefix: str = "call_"
    # It may write reasoning inline between the model's markers (x-include-thinking).
    inline_thinking: bool = False
    # It has no tool calls: they are written back as the model's text.
    calls_as_text: bool = False
    # A stream sends each call whole (Ollama's), so the neuron reads calls whole: it then
    # sees a call's end before deciding it is one.
    calls_whole: bool = False
    # What ends a stream of several choices, once all have finished (given their usage);
    # a dialect without it answers one choice per request.
    closing: Callable[[CallInfo, Usage], list[bytes]] | None = None
    # Run once the answer is whole, before its last event is sent (a stored response is
    # kept before the client can ask for it).
    on_finish: Callable[[Answer, CallInfo], Awaitable[None]] | None = None


@dataclass(frozen=True)
class Ask:
    """What a request asks a neuron to run, whichever API it came in (a chat or a raw
    prompt, how to sample, the tools and switches for the model's template)."""

    params: SamplingParams
    messages: list[ChatMessage] | None = None
    prompt: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)  # OpenAI function format
    chat_template_kwargs: dict[str, object] = field(default_factory=dict)
    thinking: bool | None = None
    reasoning_effort: str = ""
    continue_final: bool = False  # the last message is the reply's start, to continue
    suffix: str | None = None  # with `prompt`: fill in the middle, this text after the gap
    prompt_tokens: list[int] | None = None  # the prompt as token ids, used as they are
    logprobs: int | None = None  # score each answer token, with this many alternatives
    prompt_logprobs: bool = False  # score the prompt's tokens too
    require_call: bool = False  # a forced tool choice: the reply is one call (forced_calls)
    single_call: bool = False  # at most one call (parallel tool calls off)
    callable: list[str] | None = None  # the tools it may call (allowed_tools; None: all)


@dataclass
class Turn:
    """One request, translated by its dialect: what to run and how to answer."""

    route: str
    model: str  # as the client named it
    stream: bool
    ask: Ask
    reply: Reply
    request_prefix: str = "chatcmpl-"
    media_type: str = "text/event-stream"  # of a streamed answer
    # How long the model should stay loaded, when the request says (Ollama's keep_alive).
    residency: Residency = Residency.AS_SCHEDULED
    # Nothing to run: only load (or unload) the model, then answer this body, given what
    # was done ("load" or "unload"). Ollama's way to preload or free a model.
    residency_only: Callable[[str], dict[str, Any]] | None = None
    choices: int = 1  # answers to generate in all (OpenAI's n, for each prompt)
    # Several prompts (the legacy completions' list): choice c answers asks[c // n], as
    # that prompt's choice c % n. Empty: every choice answers `ask`.
    asks: tuple[Ask, ...] = ()

    @property
    def per_prompt(self) -> int:
        """How many choices answer each prompt (OpenAI's n)."""
        return self.choices // max(len(self.asks), 1)

    def ask_for(self, choice: int) -> tuple[Ask, int]:
        """What choice `choice` runs, and which of its prompt's choices it is."""
        if not self.asks:
            return self.ask, choice
        return self.asks[choice // self.per_prompt], choice % self.per_prompt


def translator(reply: Reply, call: CallInfo) -> Translator:
    inline = reply.inline_thinking and call.inline_thinking
    return Translator(reply.call_id_prefix, inline, reply.calls_as_text)


def _trace(call: CallInfo, event: Event) -> None:
    if isinstance(event, Started):
        call.trace.accepted(event.node, event.cold_start, event.load_s)
    elif not isinstance(event, Waiting | Finished | Failure):
        call.trace.first_token()


async def project(
    items: AsyncGenerator[StreamItem, None], reply: Reply, call: CallInfo, answer: Answer
) -> AsyncIterator[bytes]:
    """Drive the events of `items` into `answer`, yielding what a streaming client gets.
    Streaming: failures after the headers are reported in-band and the stream ends cleanly.
    Not streaming: nothing is encoded, and an ApiError propagates."""
    events = translator(reply, call)
    encoder = reply.encoder(call) if call.stream else None
    outcome = "cancelled"
    try:
        if encoder is not None:
            for chunk in encoder.opening():
                yield chunk
        async with aclosing(items):
            async for item in items:
                chunks: list[bytes] = []
                for event in events.feed(item):
                    if isinstance(event, Failure):
                        raise ApiError.from_wire(WireError(code=event.code, message=event.message))
                    if isinstance(event, Text) and not event.text:
                        continue
                    _trace(call, event)
                    answer.add(event)
                    if isinstance(event, Finished) and reply.on_finish is not None:
                        await _finish(reply.on_finish, answer, call)
                    if encoder is not None:
                        chunks += encoder.encode(event, answer)
                    if isinstance(event, Finished):
                        outcome = "ok"
                if chunks:  # one write per frame, however many events it makes
                    yield b"".join(chunks)
    except ApiError as error:
        outcome = error.code or "error"
        if encoder is None:
            raise
        log.warning("stream_failed", request_id=call.request_id, error=error.message)
        for chunk in encoder.failure(error, answer):
            yield chunk
    finally:
        finished = answer.finished
        call.trace.finish(outcome, answer.usage, finished.timings if finished else None)


async def _finish(
    on_finish: Callable[[Answer, CallInfo], Awaitable[None]], answer: Answer, call: CallInfo
) -> None:
    """What a dialect does with a whole answer; its failure is logged, never the answer's."""
    try:
        await on_finish(answer, call)
    except Exception as error:
        why = getattr(error, "message", None) or str(error) or type(error).__name__
        log.warning("answer_finish_failed", request_id=call.request_id, error=why)


async def collect(
    items: AsyncGenerator[StreamItem, None], reply: Reply, call: CallInfo
) -> dict[str, Any]:
    answer = Answer()
    async for _ in project(items, reply, call, answer):
        pass
    if answer.finished is None:
        raise ApiError.of(Code.STREAM_INCOMPLETE, "the stream ended without a result")
    return reply.body(answer, call)
