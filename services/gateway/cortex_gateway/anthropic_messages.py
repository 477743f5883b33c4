"""Anthropic messages: the answer, streamed (named events) or whole (pure). The request
side is `anthropic_request.py`. Reasoning becomes `thinking` blocks only when the request
enables thinking; usage counts the prompt tokens read from the prefix cache as
`cache_read_input_tokens`, the rest as `input_tokens`.
"""

from __future__ import annotations

from typing import Any, Literal

from cortex_core.config import GatewaySettings
from cortex_gateway import sse
from cortex_gateway.anthropic_request import (
    forced_tool,
    parse_request,
    sampling_params,
    template_fields,
)
from cortex_gateway.errors import ApiError
from cortex_gateway.events import (
    Answer,
    CallArguments,
    CallClosed,
    CallOpened,
    Event,
    Finished,
    Part,
    Reasoning,
    Started,
    Stop,
    Text,
    Waiting,
)
from cortex_gateway.forced_calls import forcing
from cortex_gateway.projection import Ask, CallInfo, Reply, Turn
from cortex_wire.messages import Usage

STOP_REASONS = {
    Stop.END: "end_turn", Stop.CANCELLED: "end_turn", Stop.STOP_SEQUENCE: "stop_sequence",
    Stop.LENGTH: "max_tokens", Stop.CONTEXT_FULL: "model_context_window_exceeded",
    Stop.TOOL_CALLS: "tool_use",
}  # fmt: skip


def _message(call: CallInfo, usage: Usage) -> dict[str, Any]:
    return {
        "id": call.request_id, "type": "message", "role": "assistant", "model": call.model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": _usage(usage),
    }  # fmt: skip


def _usage(usage: Usage) -> dict[str, int]:
    # Anthropic's input_tokens are the ones not read from the cache; the prefix cache here
    # is written as a side effect, so nothing counts as cache creation.
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
    }


def _stop(answer: Answer) -> dict[str, Any]:
    finished = answer.finished
    if finished is None:
        return {"stop_reason": None, "stop_sequence": None}
    return {"stop_reason": STOP_REASONS[finished.stop],
            "stop_sequence": finished.stop_sequence or None}  # fmt: skip


def block_of(part: Part, omit_thinking: bool = False) -> dict[str, Any]:
    """A content block as it stands (an open one too); thinking without its text when
    the request's `thinking.display` said "omitted"."""
    if part.call is not None:
        call = part.call
        return {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}
    if part.kind == "reasoning":
        return {"type": "thinking", "thinking": "" if omit_thinking else part.text, "signature": ""}
    return {"type": "text", "text": part.text}


class MessagesStream:
    """message_start, then each content block started, grown and stopped in turn, then
    message_delta (why it stopped, usage) and message_stop; pings while nothing comes.

    message_start waits for the neuron to accept the request, so that its usage has the
    prompt's tokens (as Anthropic's does); keep-alive comments meanwhile (a cold load)."""

    def __init__(self, call: CallInfo, show_thinking: bool, omit_thinking: bool = False) -> None:
        self.call = call
        self.show_thinking = show_thinking
        self.omit_thinking = omit_thinking
        self.begun = False  # message_start is out
        self.blocks = 0  # blocks started
        self.open: str | None = None  # the kind of the block being written

    def _event(self, name: str, **payload: Any) -> bytes:
        return sse.event(name, {"type": name, **payload})

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        index, chunks = self.blocks - 1, []
        if self.open == "thinking":
            delta = {"type": "signature_delta", "signature": ""}
            chunks.append(self._event("content_block_delta", index=index, delta=delta))
        self.open = None
        return [*chunks, self._event("content_block_stop", index=index)]

    def _start(self, block: dict[str, Any]) -> list[bytes]:
        chunks = self._close()
        self.blocks += 1
        self.open = block["type"]
        return [*chunks, self._event("content_block_start", index=self.blocks - 1,
                                     content_block=block)]  # fmt: skip

    def _delta(self, part: Literal["text", "reasoning"], text: str) -> list[bytes]:
        kind = "text" if part == "text" else "thinking"
        chunks = [] if self.open == kind else self._start(block_of(Part(part)))
        delta = {"type": f"{kind}_delta", kind: text}
        return [*chunks, self._event("content_block_delta", index=self.blocks - 1, delta=delta)]

    def opening(self) -> list[bytes]:
        return []  # message_start comes with the neuron's acceptance (see the class)

    def _begin(self) -> list[bytes]:
        if self.begun:
            return []
        self.begun = True
        # The whole prompt as input_tokens: what the cache held is known only at the end,
        # where message_delta splits it.
        usage = Usage(prompt_tokens=self.call.trace.prompt_tokens)
        return [self._event("message_start", message=_message(self.call, usage))]

    def encode(self, event: Event, answer: Answer) -> list[bytes]:
        if isinstance(event, Waiting):
            return [self._event("ping")] if self.begun else [sse.KEEPALIVE]
        return [*self._begin(), *self._encoded(event, answer)]

    def _encoded(self, event: Event, answer: Answer) -> list[bytes]:
        if isinstance(event, Started):
            return []  # message_start, from _begin
        if isinstance(event, Text):
            return self._delta("text", event.text)
        if isinstance(event, Reasoning):
            if not self.show_thinking:
                return []
            if self.omit_thinking:  # the block, without its text
                return [] if self.open == "thinking" else self._start(block_of(Part("reasoning")))
            return self._delta("reasoning", event.text)
        if isinstance(event, CallOpened):
            call = event.call
            return self._start({"type": "tool_use", "id": call.id, "name": call.name,
                                "input": {}})  # fmt: skip
        if isinstance(event, CallArguments):
            delta = {"type": "input_json_delta", "partial_json": event.text}
            return [self._event("content_block_delta", index=self.blocks - 1, delta=delta)]
        if isinstance(event, CallClosed):
            return self._close()
        if isinstance(event, Finished):
            end = self._event("message_delta", delta=_stop(answer), usage=_usage(event.usage))
            return [*self._close(), end, self._event("message_stop")]
        return []

    def failure(self, error: ApiError, answer: Answer) -> list[bytes]:
        return [sse.event("error", {**error.anthropic_body(), "request_id": self.call.request_id})]


def message_body(
    answer: Answer, call: CallInfo, show_thinking: bool, omit_thinking: bool = False
) -> dict[str, Any]:
    parts = answer.visible(reasoning=show_thinking)
    return {
        **_message(call, answer.usage), **_stop(answer),
        "content": [block_of(part, omit_thinking) for part in parts],
    }  # fmt: skip


def messages_reply(show_thinking: bool, omit_thinking: bool = False) -> Reply:
    return Reply(
        encoder=lambda call: MessagesStream(call, show_thinking, omit_thinking),
        body=lambda answer, call: message_body(answer, call, show_thinking, omit_thinking),
        call_id_prefix="toolu_",
    )


def turn(body: bytes, settings: GatewaySettings) -> Turn:
    request = parse_request(body)
    thinking = request.thinking
    show_thinking = thinking is not None and thinking.type != "disabled"
    fields = template_fields(request, settings.strip_billing_header)
    one = request.tool_choice is not None and bool(request.tool_choice.disable_parallel_tool_use)
    ask = Ask(params=sampling_params(request), single_call=one, **fields)
    forced, name = forced_tool(request.tool_choice)
    return Turn(
        route="messages",
        model=request.model,
        stream=request.stream,
        ask=forcing(ask, name, "tool_choice") if forced else ask,
        reply=messages_reply(show_thinking, thinking is not None and thinking.display == "omitted"),
        request_prefix="msg_",
    )
