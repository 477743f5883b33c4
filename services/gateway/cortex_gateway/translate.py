"""A request's bus frames as the gateway's one event stream (pure).

Here, once for every dialect: a call streamed in several frames becomes opened, arguments,
closed; an older neuron's raw tool block is parsed (or kept as text, markers and all); the
end says why in one typed reason; and, for dialects that take them so, reasoning is written
inline between the model's own markers and calls are written back as text.
"""

from __future__ import annotations

import json
from dataclasses import replace

from cortex_gateway.events import (
    WAITING,
    CallArguments,
    CallClosed,
    CallOpened,
    Event,
    Failure,
    Finished,
    PromptScored,
    Reasoning,
    Started,
    Stop,
    Text,
)
from cortex_gateway.inference import WAITING as BUS_WAITING
from cortex_gateway.inference import Accepted, StreamItem
from cortex_gateway.tool_calls import ParsedCall, block_as_text, new_call_id, parse_tool_block
from cortex_wire.messages import (
    Delta,
    Done,
    Failed,
    KeepAlive,
    ReasoningDelta,
    TokenLogprob,
    ToolCallBlock,
    ToolCallFrame,
)


def stop_of(done: Done, called: bool) -> Stop:
    if done.finish_reason == "length":
        return Stop.CONTEXT_FULL if done.context_full else Stop.LENGTH
    if done.finish_reason == "cancelled":
        return Stop.CANCELLED
    if called:
        return Stop.TOOL_CALLS
    return Stop.STOP_SEQUENCE if done.stop_sequence else Stop.END


class Translator:
    """Feed it a request's stream items in order; it returns the events each one makes."""

    def __init__(
        self, call_id_prefix: str = "call_", inline_thinking: bool = False,
        calls_as_text: bool = False,
    ) -> None:  # fmt: skip
        self._prefix = call_id_prefix
        self._inline = inline_thinking  # reasoning as text, between the model's markers
        self._calls_as_text = calls_as_text
        self._reasoning_markers: list[str] = []
        self._call_markers: list[str] = []
        self._in_reasoning = False  # inline: the open marker is written, the close is not
        self._open: ParsedCall | None = None
        self._open_index: int | None = None  # the neuron's index of the call being streamed
        self._calls = 0

    def feed(self, item: StreamItem) -> list[Event]:
        if isinstance(item, Accepted):
            self._reasoning_markers = item.reasoning_markers
            self._call_markers = item.tool_call_markers
            return [Started(item.node, item.cold_start, item.load_s)]
        if isinstance(item, Delta):
            events: list[Event] = []
            if item.prompt_logprobs:
                events.append(PromptScored(tuple(item.prompt_logprobs)))
            if item.text or item.logprobs:
                events += self._text(item.text, tuple(item.logprobs))
            return events
        if isinstance(item, ReasoningDelta):
            return self._reasoning(item.text) if item.text else []
        if isinstance(item, ToolCallFrame):
            return self._frame(item)
        if isinstance(item, ToolCallBlock):
            return self._block(item)
        if isinstance(item, Done):
            events = [*self._close_call(), *self._end_reasoning()]
            stop = stop_of(item, self._calls > 0)
            end = Finished(stop, item.usage, item.timings, item.stop_sequence, item.end_logprob)
            return [*events, end]
        if isinstance(item, Failed):
            return [Failure(item.error.code, item.error.message)]
        return [WAITING] if item is BUS_WAITING or isinstance(item, KeepAlive) else []

    # --- text and reasoning ---------------------------------------------------------------

    def _text(self, text: str, logprobs: tuple[TokenLogprob, ...] = ()) -> list[Event]:
        # One event: the close marker of inline reasoning and the answer's first words.
        return [Text(self._close_marker() + text, logprobs)]

    def _reasoning(self, text: str) -> list[Event]:
        if not self._inline or len(self._reasoning_markers) != 2:
            return [Reasoning(text)]
        if self._in_reasoning:
            return [Text(text)]
        self._in_reasoning = True
        return [Text(self._reasoning_markers[0] + text)]

    def _end_reasoning(self) -> list[Event]:
        closing = self._close_marker()
        return [Text(closing)] if closing else []

    def _close_marker(self) -> str:
        if not self._in_reasoning:
            return ""
        self._in_reasoning = False
        return self._reasoning_markers[1]

    # --- calls ------------------------------------------------------------------------------

    def _frame(self, frame: ToolCallFrame) -> list[Event]:
        events: list[Event] = []
        if frame.index != self._open_index:
            events += self._open_call(ParsedCall(new_call_id(self._prefix), frame.name, ""))
            self._open_index = frame.index
        events += self._grow(frame.arguments)
        if frame.complete:
            events += self._close_call()
        return events

    def _block(self, block: ToolCallBlock) -> list[Event]:
        # Older neurons send the raw text between tool-call markers.
        parsed = parse_tool_block(block.text, self._prefix) if block.complete else None
        if parsed is None:
            return self._text(block_as_text(block.text, self._call_markers, block.complete))
        events = self._open_call(replace(parsed, arguments=""))
        self._open_index = -1  # no neuron frame has a negative index
        return [*events, *self._grow(parsed.arguments), *self._close_call()]

    def _open_call(self, call: ParsedCall) -> list[Event]:
        events = [*self._close_call(), *self._end_reasoning()]
        self._open = call
        if self._calls_as_text:
            return events
        self._calls += 1
        return [*events, CallOpened(call)]

    def _grow(self, text: str) -> list[Event]:
        if not text or self._open is None:
            return []
        self._open = replace(self._open, arguments=self._open.arguments + text)
        return [] if self._calls_as_text else [CallArguments(self._open, text)]

    def _close_call(self) -> list[Event]:
        """End the call being streamed (a stream that ended inside one ends it too)."""
        call, self._open, self._open_index = self._open, None, None
        if call is None:
            return []
        if not call.arguments.strip():
            call = replace(call, arguments="{}")
        if self._calls_as_text:
            return self._text(written_back(call, self._call_markers))
        return [CallClosed(call)]


def written_back(call: ParsedCall, markers: list[str]) -> str:
    """A call as text, for a dialect that has no calls: between the model's markers."""
    body = json.dumps({"name": call.name, "arguments": call.input}, ensure_ascii=False)
    return block_as_text(body, markers, True)
