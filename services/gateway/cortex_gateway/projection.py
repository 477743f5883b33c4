"""From the neuron's events to one dialect's response, streamed or whole.

Each dialect subclasses Projection: its hooks receive the events in order and return the
SSE bytes to send (a streaming client gets them; for a non-streaming client they are
dropped) while the projection accumulates the whole response for `body()`. One code path
serves both modes, so they cannot drift apart.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from cortex_gateway.errors import ApiError
from cortex_gateway.inference import WAITING, Accepted, StreamItem
from cortex_gateway.metrics import RequestTrace
from cortex_gateway.tool_calls import ParsedCall, block_as_text, new_call_id, parse_tool_block
from cortex_wire.messages import (
    ChatMessage,
    Delta,
    Done,
    Failed,
    ReasoningDelta,
    SamplingParams,
    Timings,
    ToolCallBlock,
    ToolCallFrame,
    Usage,
)

log = structlog.get_logger("gateway")


@dataclass
class CallInfo:
    """What every projection needs to know about the request it answers."""

    request_id: str
    model: str  # as the client named it (an alias stays an alias)
    trace: RequestTrace
    created: int = field(default_factory=lambda: int(time.time()))
    stream: bool = False
    inline_thinking: bool = False


class Projection:
    """Base of every dialect's response projection (see the module docstring)."""

    call_id_prefix = "call_"

    def __init__(self, call: CallInfo) -> None:
        self.call = call
        self.accepted = Accepted(node="", reasoning_markers=[])
        self.usage = Usage()
        self.finish_reason = "stop"
        self.tool_calls: list[ParsedCall] = []
        self._open_call: int | None = None  # the neuron's index of the call being streamed

    # --- hooks (each returns the bytes to stream) -------------------------------------

    def opening(self) -> list[bytes]:
        return []

    def keepalive(self) -> list[bytes]:
        return []

    def on_accepted(self, accepted: Accepted) -> list[bytes]:
        self.accepted = accepted
        return []

    def text(self, text: str) -> list[bytes]:
        raise NotImplementedError

    def reasoning(self, text: str) -> list[bytes]:
        return []

    # A call: opened (its id and name), its arguments as they grow, closed. The hooks see
    # `self.tool_calls[-1]` as it stands; a dialect without tool calls writes it as text.

    def call_opened(self, call: ParsedCall) -> list[bytes]:
        return []

    def call_arguments(self, call: ParsedCall, text: str) -> list[bytes]:
        return []

    def call_closed(self, call: ParsedCall) -> list[bytes]:
        return self.text(block_as_text(call.arguments, self.accepted.tool_call_markers, True))

    def parsed_call(self, frame: ToolCallFrame) -> list[bytes]:
        """A call the neuron parsed, whole or a part of it; the gateway gives each call
        this dialect's kind of id."""
        chunks: list[bytes] = []
        if frame.index != self._open_call:
            chunks += self._open_call_with(
                ParsedCall(new_call_id(self.call_id_prefix), frame.name, "")
            )
            self._open_call = frame.index
        chunks += self._call_grows(frame.arguments)
        if frame.complete:
            chunks += self.close_call()
        return chunks

    def _open_call_with(self, call: ParsedCall) -> list[bytes]:
        chunks = self.close_call()
        self.tool_calls.append(call)
        return [*chunks, *self.call_opened(call)]

    def _call_grows(self, text: str) -> list[bytes]:
        if not text:
            return []
        call = self.tool_calls[-1]
        self.tool_calls[-1] = replace(call, arguments=call.arguments + text)
        return self.call_arguments(self.tool_calls[-1], text)

    def close_call(self) -> list[bytes]:
        """End the call being streamed (a stream that ended inside one ends it too)."""
        if self._open_call is None or not self.tool_calls:
            return []
        self._open_call = None
        call = self.tool_calls[-1]
        if not call.arguments.strip():
            call = self.tool_calls[-1] = replace(call, arguments="{}")
        return self.call_closed(call)

    def tool_block(self, block: ToolCallBlock) -> list[bytes]:
        # Older neurons send the raw text between tool-call markers.
        parsed = parse_tool_block(block.text, self.call_id_prefix) if block.complete else None
        if parsed is None:
            markers = self.accepted.tool_call_markers
            return self.text(block_as_text(block.text, markers, block.complete))
        chunks = self._open_call_with(replace(parsed, arguments=""))
        self._open_call = -len(self.tool_calls)  # no neuron frame has a negative index
        return [*chunks, *self._call_grows(parsed.arguments), *self.close_call()]

    def done(self, done: Done) -> list[bytes]:
        raise NotImplementedError

    def error(self, error: ApiError) -> list[bytes]:
        raise NotImplementedError

    def body(self) -> dict[str, Any]:
        raise NotImplementedError


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


@dataclass
class Turn:
    """One request, translated by its dialect: what to run and how to answer."""

    route: str
    model: str  # as the client named it
    stream: bool
    ask: Ask
    projection: Callable[[CallInfo], Projection]
    request_prefix: str = "chatcmpl-"
    media_type: str = "text/event-stream"  # of a streamed answer


async def project(
    items: AsyncGenerator[StreamItem, None], projection: Projection
) -> AsyncIterator[bytes]:
    """Drive `projection` over the neuron's events. Streaming: failures after the headers
    are reported in-band and the stream ends cleanly. Not streaming: ApiError propagates."""
    call = projection.call
    outcome = "cancelled"
    timings = Timings()
    try:
        for chunk in projection.opening():
            yield chunk
        async with aclosing(items):
            async for item in items:
                if item is WAITING:
                    chunks = projection.keepalive()
                elif isinstance(item, Accepted):
                    call.trace.accepted(item.node, item.cold_start, item.load_s)
                    chunks = projection.on_accepted(item)
                elif isinstance(item, Delta):
                    call.trace.first_token()
                    chunks = projection.text(item.text) if item.text else []
                elif isinstance(item, ReasoningDelta):
                    call.trace.first_token()
                    chunks = projection.reasoning(item.text) if item.text else []
                elif isinstance(item, ToolCallFrame):
                    call.trace.first_token()
                    chunks = projection.parsed_call(item)
                elif isinstance(item, ToolCallBlock):
                    call.trace.first_token()
                    chunks = projection.tool_block(item)
                elif isinstance(item, Done):
                    projection.usage = item.usage
                    timings = item.timings
                    chunks = [*projection.close_call(), *projection.done(item)]
                    outcome = "ok"
                elif isinstance(item, Failed):
                    raise ApiError.from_wire(item.error)
                else:
                    chunks = []
                if chunks:  # one write per frame, however many events it makes
                    yield b"".join(chunks)
    except ApiError as error:
        outcome = error.code or "error"
        if not call.stream:
            raise
        log.warning("stream_failed", request_id=call.request_id, error=error.message)
        for chunk in projection.error(error):
            yield chunk
    finally:
        call.trace.finish(outcome, projection.usage, timings)


async def collect(
    items: AsyncGenerator[StreamItem, None], projection: Projection
) -> dict[str, Any]:
    async for _ in project(items, projection):
        pass
    if projection.call.trace.outcome != "ok":
        raise ApiError(502, "the stream ended without a result", type="server_error")
    return projection.body()
