"""Anthropic messages: request translation and the response projection (pure).

System prompts (a string or text blocks) become one leading system message; `tool_use`
blocks become the assistant's tool calls and `tool_result` blocks become `tool` messages,
so the model's chat template sees one history whichever dialect sent it. Reasoning becomes
`thinking` blocks only when the request enables thinking.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import msgspec

from cortex_gateway import sse
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
    Stop,
    Text,
    Waiting,
)
from cortex_gateway.openai_chat import check_positive, check_range, decode_body, unsupported
from cortex_gateway.projection import Ask, CallInfo, Reply, Turn
from cortex_gateway.sampling_defaults import ANTHROPIC
from cortex_wire.messages import ChatMessage, SamplingParams, ToolCall, Usage


class Block(msgspec.Struct, kw_only=True):
    type: str
    text: str | None = None
    thinking: str | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    tool_use_id: str | None = None
    content: str | list[Block] | None = None
    is_error: bool | None = None


class Message(msgspec.Struct, kw_only=True):
    role: str
    content: str | list[Block]


class Tool(msgspec.Struct, kw_only=True):
    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None


class Thinking(msgspec.Struct, kw_only=True):
    type: str
    budget_tokens: int | None = None


class ToolChoice(msgspec.Struct, kw_only=True):
    type: str
    name: str | None = None


# "adaptive": the model decides how long to think (no budget).
THINKING_TYPES = ("enabled", "disabled", "adaptive")


class MessagesRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: list[Message]
    max_tokens: int | None = None
    system: str | list[Block] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stream: bool = False
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    metadata: dict[str, Any] | None = None


class CountTokensRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: list[Message]
    system: str | list[Block] | None = None
    tools: list[Tool] | None = None
    thinking: Thinking | None = None


def _texts(blocks: str | list[Block] | None, where: str) -> str:
    if blocks is None:
        return ""
    if isinstance(blocks, str):
        return blocks
    parts = []
    for index, block in enumerate(blocks):
        if block.type != "text" or block.text is None:
            raise _block_error(block, f"{where}[{index}]")
        parts.append(block.text)
    return "\n".join(parts)


def _block_error(block: Block, where: str) -> ApiError:
    if block.type in ("image", "document"):
        message = f"{block.type} blocks are not supported: the models served here read text only"
    else:
        message = f"unexpected content block type {block.type!r} here"
    return ApiError.invalid(message, param=f"{where}.type")


def _validate_messages(messages: list[Message]) -> None:
    if not messages:
        raise ApiError.invalid("messages: at least one message is required", param="messages")
    for index, message in enumerate(messages):
        if message.role not in ("user", "assistant"):
            raise ApiError.invalid(
                f"messages[{index}].role must be 'user' or 'assistant', got {message.role!r}",
                param=f"messages[{index}].role",
            )  # fmt: skip


def chat_messages(system: str | list[Block] | None, messages: list[Message]) -> list[ChatMessage]:
    _validate_messages(messages)
    out: list[ChatMessage] = []
    system_text = _texts(system, "system")
    if system_text:
        out.append(ChatMessage(role="system", content=system_text))
    for index, message in enumerate(messages):
        where = f"messages[{index}].content"
        if isinstance(message.content, str):
            out.append(ChatMessage(role=message.role, content=message.content))
            continue
        texts: list[str] = []
        calls: list[ToolCall] = []
        thoughts: list[str] = []
        for position, block in enumerate(message.content):
            if block.type == "text" and block.text is not None:
                texts.append(block.text)
            elif block.type == "tool_use" and message.role == "assistant":
                arguments = json.dumps(block.input or {}, ensure_ascii=False)
                calls.append(
                    ToolCall(id=block.id or "", name=block.name or "", arguments=arguments)
                )
            elif block.type == "tool_result" and message.role == "user":
                result = _texts(block.content, f"{where}[{position}].content")
                if block.is_error:
                    result = f"Error: {result}"
                out.append(
                    ChatMessage(role="tool", content=result, tool_call_id=block.tool_use_id or "")
                )
            elif block.type == "thinking" and message.role == "assistant":
                thoughts.append(block.thinking or "")  # the template decides if it is kept
            elif block.type == "redacted_thinking" and message.role == "assistant":
                continue  # encrypted by another provider: nothing a local model can read
            else:
                raise _block_error(block, f"{where}[{position}]")
        if texts or calls or thoughts:
            out.append(
                ChatMessage(
                    role=message.role,
                    content="".join(texts),
                    tool_calls=calls,
                    reasoning="".join(thoughts),
                )
            )
    return out


def template_tools(tools: list[Tool] | None, choice: ToolChoice | None) -> list[dict[str, Any]]:
    if choice is not None and choice.type == "none":
        return []
    definitions = []
    for index, tool in enumerate(tools or []):
        if tool.type not in (None, "custom"):
            raise unsupported(f"tools[{index}].type", f"{tool.type!r}; only client tools")
        function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema or {}}
        if tool.description:
            function["description"] = tool.description
        definitions.append({"type": "function", "function": function})
    return definitions


def thinking_switch(thinking: Thinking | None) -> dict[str, Any]:
    """InferRequest fields for the model's thinking switch."""
    if thinking is None:
        return {}
    return {"thinking": thinking.type != "disabled"}


def thinking_budget(thinking: Thinking | None) -> int | None:
    if thinking is None or thinking.type != "enabled":
        return None
    if thinking.budget_tokens is None or thinking.budget_tokens < 0:
        raise ApiError.invalid("thinking.budget_tokens is required when thinking is enabled",
                       param="thinking.budget_tokens")  # fmt: skip
    return thinking.budget_tokens


def parse_request(body: bytes) -> MessagesRequest:
    request: MessagesRequest = decode_body(body, MessagesRequest)
    if not request.model:
        raise ApiError.invalid("model: field required", param="model")
    if request.max_tokens is None:
        raise ApiError.invalid("max_tokens: field required", param="max_tokens")
    check_positive("max_tokens", request.max_tokens)
    check_range("temperature", request.temperature, 0.0, 1.0)
    check_range("top_p", request.top_p, 0.0, 1.0)
    if request.top_k is not None and request.top_k < 0:
        raise ApiError.invalid(f"top_k must be >= 0, got {request.top_k}", param="top_k")
    if request.tool_choice is not None and request.tool_choice.type in ("any", "tool"):
        raise unsupported("tool_choice", "a call cannot be forced; use 'auto' or 'none'")
    if request.thinking is not None and request.thinking.type not in THINKING_TYPES:
        raise ApiError.invalid(f"thinking.type must be one of {', '.join(THINKING_TYPES)}",
            param="thinking.type",
        )  # fmt: skip
    thinking_budget(request.thinking)
    return request


def sampling_params(request: MessagesRequest) -> SamplingParams:
    return SamplingParams(
        max_tokens=request.max_tokens,
        temperature=ANTHROPIC.temperature if request.temperature is None else request.temperature,
        top_p=ANTHROPIC.top_p if request.top_p is None else request.top_p,
        top_k=request.top_k or ANTHROPIC.top_k,
        min_p=ANTHROPIC.min_p,
        repeat_penalty=ANTHROPIC.repeat_penalty,
        stop=list(request.stop_sequences or []),
        reasoning_budget=thinking_budget(request.thinking),
    )


STOP_REASONS = {
    Stop.END: "end_turn", Stop.CANCELLED: "end_turn", Stop.STOP_SEQUENCE: "stop_sequence",
    Stop.LENGTH: "max_tokens", Stop.TOOL_CALLS: "tool_use",
}  # fmt: skip


def _message(call: CallInfo) -> dict[str, Any]:
    return {
        "id": call.request_id, "type": "message", "role": "assistant", "model": call.model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }  # fmt: skip


def _usage(usage: Usage) -> dict[str, int]:
    return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}


def _stop(answer: Answer) -> dict[str, Any]:
    finished = answer.finished
    if finished is None:
        return {"stop_reason": None, "stop_sequence": None}
    return {"stop_reason": STOP_REASONS[finished.stop],
            "stop_sequence": finished.stop_sequence or None}  # fmt: skip


def block_of(part: Part) -> dict[str, Any]:
    """A content block as it stands (an open one too)."""
    if part.call is not None:
        call = part.call
        return {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}
    if part.kind == "reasoning":
        return {"type": "thinking", "thinking": part.text, "signature": ""}
    return {"type": "text", "text": part.text}


class MessagesStream:
    """message_start, then each content block started, grown and stopped in turn, then
    message_delta (why it stopped, usage) and message_stop; pings while nothing comes."""

    def __init__(self, call: CallInfo, show_thinking: bool) -> None:
        self.call = call
        self.show_thinking = show_thinking
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
        empty = block_of(Part(part))
        kind = empty["type"]  # "text" or "thinking"
        chunks = [] if self.open == kind else self._start(empty)
        delta = {"type": f"{kind}_delta", kind: text}
        return [*chunks, self._event("content_block_delta", index=self.blocks - 1, delta=delta)]

    def opening(self) -> list[bytes]:
        return [self._event("message_start", message=_message(self.call))]

    def encode(self, event: Event, answer: Answer) -> list[bytes]:
        if isinstance(event, Waiting):
            return [self._event("ping")]
        if isinstance(event, Text):
            return self._delta("text", event.text)
        if isinstance(event, Reasoning):
            return self._delta("reasoning", event.text) if self.show_thinking else []
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

    def failure(self, error: ApiError) -> list[bytes]:
        return [sse.event("error", error.anthropic_body())]


def message_body(answer: Answer, call: CallInfo, show_thinking: bool) -> dict[str, Any]:
    return {
        **_message(call), **_stop(answer), "usage": _usage(answer.usage),
        "content": [block_of(part) for part in answer.visible(reasoning=show_thinking)],
    }  # fmt: skip


def messages_reply(show_thinking: bool) -> Reply:
    return Reply(
        encoder=lambda call: MessagesStream(call, show_thinking),
        body=lambda answer, call: message_body(answer, call, show_thinking),
        call_id_prefix="toolu_",
    )


def turn(body: bytes) -> Turn:
    request = parse_request(body)
    show_thinking = request.thinking is not None and request.thinking.type != "disabled"
    return Turn(
        route="messages",
        model=request.model,
        stream=request.stream,
        ask=Ask(
            messages=chat_messages(request.system, request.messages),
            params=sampling_params(request),
            tools=template_tools(request.tools, request.tool_choice),
            **thinking_switch(request.thinking),
        ),
        reply=messages_reply(show_thinking),
        request_prefix="msg_",
    )
