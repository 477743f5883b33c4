"""OpenAI Responses: request translation and the response projection (pure).

`instructions` become the leading system message. Output items come in generation order:
a `reasoning` item (its text as `reasoning_text`), a `message` with `output_text`, and a
`function_call` item per tool call. Streaming events are named and carry a
`sequence_number`.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from cortex_gateway import sse
from cortex_gateway.errors import ApiError
from cortex_gateway.openai_chat import (
    EFFORT_BUDGETS,
    ContentPart,
    check_positive,
    check_range,
    content_text,
    decode_body,
    thinking_of,
    unsupported,
)
from cortex_gateway.projection import Ask, CallInfo, Projection, Turn
from cortex_gateway.sampling_defaults import OPENAI
from cortex_gateway.tool_calls import ParsedCall
from cortex_wire.messages import ChatMessage, Done, SamplingParams, ToolCall

# Input parts that carry text (earlier assistant output comes back as output_text).
TEXT_KINDS = ("input_text", "output_text", "text")
REASONING_KINDS = ("reasoning_text", "summary_text", "text")


class Item(msgspec.Struct, kw_only=True):
    type: str = "message"
    role: str | None = None
    content: str | list[ContentPart] | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None
    summary: list[ContentPart] | None = None  # a reasoning item's summary parts


class FunctionTool(msgspec.Struct, kw_only=True):
    type: str
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Reasoning(msgspec.Struct, kw_only=True):
    effort: str | None = None
    summary: str | None = None


class TextFormat(msgspec.Struct, kw_only=True):
    type: str
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class TextOptions(msgspec.Struct, kw_only=True):
    format: TextFormat | None = None


class ResponsesRequest(msgspec.Struct, kw_only=True):
    model: str
    input: str | list[Item]
    instructions: str | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stream: bool = False
    reasoning: Reasoning | None = None
    text: TextOptions | None = None
    previous_response_id: str | None = None
    store: bool | None = None
    metadata: dict[str, Any] | None = None
    user: str | None = None
    parallel_tool_calls: bool | None = None


def parse_request(body: bytes) -> ResponsesRequest:
    request: ResponsesRequest = decode_body(body, ResponsesRequest)
    if not request.model:
        raise ApiError(400, "model must not be empty", param="model")
    if request.previous_response_id:
        raise unsupported("previous_response_id", "responses are not stored; send the input")
    if isinstance(request.tool_choice, dict) or request.tool_choice == "required":
        raise unsupported("tool_choice", "a call cannot be forced; use 'auto' or 'none'")
    for index, tool in enumerate(request.tools or []):
        if tool.type != "function" or not tool.name:
            raise unsupported(f"tools[{index}].type", f"{tool.type!r}; only named function tools")
    effort = request.reasoning.effort if request.reasoning else None
    if effort is not None and effort not in EFFORT_BUDGETS:
        raise ApiError(
            400,
            f"reasoning.effort must be one of {', '.join(EFFORT_BUDGETS)}",
            param="reasoning.effort",
        )
    fmt = request.text.format if request.text else None
    if fmt is not None and fmt.type not in ("text", "json_object", "json_schema"):
        raise ApiError(400, f"unknown text.format type {fmt.type!r}", param="text.format.type")
    check_positive("max_output_tokens", request.max_output_tokens)
    check_range("temperature", request.temperature, 0.0, 2.0)
    check_range("top_p", request.top_p, 0.0, 1.0)
    chat_messages(request)  # validates the input items
    return request


def chat_messages(request: ResponsesRequest) -> list[ChatMessage]:
    messages: list[ChatMessage] = []
    if request.instructions:
        messages.append(ChatMessage(role="system", content=request.instructions))
    if isinstance(request.input, str):
        return [*messages, ChatMessage(role="user", content=request.input)]
    if not request.input:
        raise ApiError(400, "input must not be empty", param="input")
    reasoning = ""  # a reasoning item belongs to the assistant output that follows it
    for index, item in enumerate(request.input):
        where = f"input[{index}]"
        if item.type == "message":
            if item.role not in ("user", "assistant", "system", "developer"):
                raise ApiError(400, f"unknown role {item.role!r}", param=f"{where}.role")
            text = content_text(item.content, f"{where}.content", TEXT_KINDS)
            message = ChatMessage(role=item.role, content=text)
            if item.role == "assistant":
                message.reasoning, reasoning = reasoning, ""
            messages.append(message)
        elif item.type == "function_call":
            call = ToolCall(
                id=item.call_id or "", name=item.name or "", arguments=item.arguments or "{}"
            )
            if messages and messages[-1].role == "assistant" and not messages[-1].content:
                messages[-1].tool_calls.append(call)
                messages[-1].reasoning += reasoning
            else:
                messages.append(
                    ChatMessage(
                        role="assistant", content="", tool_calls=[call], reasoning=reasoning
                    )
                )
            reasoning = ""
        elif item.type == "function_call_output":
            messages.append(
                ChatMessage(role="tool", content=item.output or "", tool_call_id=item.call_id or "")
            )
        elif item.type == "reasoning":
            # Its text, else its summary, goes back with the turn (the template decides).
            parts = item.content or item.summary
            reasoning += content_text(parts, f"{where}.content", REASONING_KINDS) if parts else ""
        else:
            raise unsupported(f"{where}.type", f"{item.type!r} input items")
    return messages


def template_tools(request: ResponsesRequest) -> list[dict[str, Any]]:
    if request.tool_choice == "none":
        return []
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description or "",
                "parameters": tool.parameters or {},
            },
        }
        for tool in request.tools or []
    ]


def sampling_params(request: ResponsesRequest) -> SamplingParams:
    fmt = request.text.format if request.text else None
    schema: dict[str, Any] | None = None
    if fmt is not None and fmt.type == "json_object":
        schema = {"type": "object"}
    elif fmt is not None and fmt.type == "json_schema":
        schema = fmt.schema or {"type": "object"}
    effort = request.reasoning.effort if request.reasoning else None
    return SamplingParams(
        max_tokens=request.max_output_tokens,
        temperature=OPENAI.temperature if request.temperature is None else request.temperature,
        top_p=OPENAI.top_p if request.top_p is None else request.top_p,
        top_k=OPENAI.top_k,
        min_p=OPENAI.min_p,
        repeat_penalty=OPENAI.repeat_penalty,
        reasoning_budget=EFFORT_BUDGETS.get(effort or ""),
        json_schema=schema,
    )


def _id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


class ResponsesProjection(Projection):
    def __init__(self, call: CallInfo, request: ResponsesRequest) -> None:
        super().__init__(call)
        self.request = request
        self.items: list[dict[str, Any]] = []
        self.open_kind: str | None = None
        self.sequence = 0
        self.status = "in_progress"

    # --- events ---------------------------------------------------------------------

    def _event(self, kind: str, **payload: Any) -> bytes:
        body = {"type": kind, "sequence_number": self.sequence, **payload}
        self.sequence += 1
        return sse.event(kind, body)

    def _response(self) -> dict[str, Any]:
        usage = self.usage
        incomplete = {"reason": "max_output_tokens"} if self.status == "incomplete" else None
        return {
            "id": self.call.request_id,
            "object": "response",
            "created_at": self.call.created,
            "status": self.status,
            "error": None,
            "incomplete_details": incomplete,
            "instructions": self.request.instructions,
            "model": self.call.model,
            "output": self.items,
            "parallel_tool_calls": True,
            "tool_choice": self.request.tool_choice or "auto",
            "tools": [msgspec.to_builtins(t) for t in self.request.tools or []],
            "temperature": self.request.temperature,
            "top_p": self.request.top_p,
            "max_output_tokens": self.request.max_output_tokens,
            "metadata": self.request.metadata or {},
            "usage": {
                "input_tokens": usage.prompt_tokens,
                "input_tokens_details": {"cached_tokens": usage.cached_tokens},
                "output_tokens": usage.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
                "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            },
        }

    def opening(self) -> list[bytes]:
        snapshot = self._response()
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def keepalive(self) -> list[bytes]:
        return [sse.KEEPALIVE]

    # --- items ----------------------------------------------------------------------

    def _close(self) -> list[bytes]:
        if self.open_kind is None:
            return []
        item, index = self.items[-1], len(self.items) - 1
        chunks = []
        if self.open_kind == "reasoning":
            text = item["content"][0]["text"]
            chunks.append(
                self._event(
                    "response.reasoning_text.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    text=text,
                )
            )
        else:
            part = item["content"][0]
            chunks.append(
                self._event(
                    "response.output_text.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    text=part["text"],
                    logprobs=[],
                )
            )
            chunks.append(
                self._event(
                    "response.content_part.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=part,
                )
            )
        item["status"] = "completed"
        chunks.append(self._event("response.output_item.done", output_index=index, item=item))
        self.open_kind = None
        return chunks

    def _open(self, kind: str) -> list[bytes]:
        chunks = self._close()
        if kind == "reasoning":
            item = {
                "type": "reasoning",
                "id": _id("rs_"),
                "summary": [],
                "content": [{"type": "reasoning_text", "text": ""}],
                "status": "in_progress",
            }
        else:
            item = {
                "type": "message",
                "id": _id("msg_"),
                "status": "in_progress",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "", "annotations": [], "logprobs": []}],
            }
        self.items.append(item)
        self.open_kind = kind
        index = len(self.items) - 1
        added = {**item, "content": []}
        chunks.append(self._event("response.output_item.added", output_index=index, item=added))
        if kind == "message":
            part = {"type": "output_text", "text": "", "annotations": []}
            chunks.append(
                self._event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=part,
                )
            )
        return chunks

    def _append(self, kind: str, text: str) -> list[bytes]:
        chunks = [] if self.open_kind == kind else self._open(kind)
        item, index = self.items[-1], len(self.items) - 1
        item["content"][0]["text"] += text
        event = (
            "response.reasoning_text.delta" if kind == "reasoning" else "response.output_text.delta"
        )
        extra: dict[str, Any] = {} if kind == "reasoning" else {"logprobs": []}
        chunks.append(
            self._event(
                event, item_id=item["id"], output_index=index, content_index=0, delta=text, **extra
            )
        )
        return chunks

    def text(self, text: str) -> list[bytes]:
        return self._append("message", text)

    def reasoning(self, text: str) -> list[bytes]:
        return self._append("reasoning", text)

    def call_opened(self, call: ParsedCall) -> list[bytes]:
        chunks = self._close()
        item = {
            "type": "function_call",
            "id": _id("fc_"),
            "call_id": call.id,
            "name": call.name,
            "arguments": "",
            "status": "in_progress",
        }
        self.items.append(item)
        chunks.append(
            self._event("response.output_item.added", output_index=len(self.items) - 1, item=item)
        )
        return chunks

    def call_arguments(self, call: ParsedCall, text: str) -> list[bytes]:
        item, index = self.items[-1], len(self.items) - 1
        item["arguments"] = call.arguments
        return [
            self._event(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=index,
                delta=text,
            )
        ]

    def call_closed(self, call: ParsedCall) -> list[bytes]:
        item, index = self.items[-1], len(self.items) - 1
        item.update(arguments=call.arguments, status="completed")
        return [
            self._event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                arguments=call.arguments,
                name=call.name,
            ),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def done(self, done: Done) -> list[bytes]:
        chunks = self._close()
        self.usage = done.usage
        self.status = "incomplete" if done.finish_reason == "length" else "completed"
        event = "response.incomplete" if self.status == "incomplete" else "response.completed"
        return [*chunks, self._event(event, response=self._response())]

    def error(self, error: ApiError) -> list[bytes]:
        return [self._event("error", code=error.code, message=error.message, param=error.param)]

    def body(self) -> dict[str, Any]:
        return self._response()


def turn(body: bytes) -> Turn:
    parsed = parse_request(body)
    return Turn(
        route="responses",
        model=parsed.model,
        stream=parsed.stream,
        ask=Ask(
            messages=chat_messages(parsed),
            params=sampling_params(parsed),
            tools=template_tools(parsed),
            **thinking_of(parsed.reasoning.effort if parsed.reasoning else None),
        ),
        projection=lambda call: ResponsesProjection(call, parsed),
        request_prefix="resp_",
    )
