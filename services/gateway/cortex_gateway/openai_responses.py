"""OpenAI Responses: request translation and the response projection (pure).

`instructions` become the leading system message. Output items come in generation order:
a `reasoning` item (its text as `reasoning_text`), a `message` with `output_text`, and a
`function_call` item per tool call. Streaming events are named and carry a
`sequence_number`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

import msgspec

from cortex_gateway import sse
from cortex_gateway.errors import ApiError
from cortex_gateway.events import (
    CUT_SHORT,
    Answer,
    CallArguments,
    CallClosed,
    CallOpened,
    Event,
    Finished,
    Part,
    Text,
    Waiting,
)
from cortex_gateway.events import Reasoning as ReasoningEvent
from cortex_gateway.forced_calls import RESPONSES_NAME, allowing, openai_forced
from cortex_gateway.logprobs import check_top, token_entries
from cortex_gateway.openai_chat import (
    EFFORT_BUDGETS,
    ContentPart,
    check_positive,
    check_range,
    check_tool_names,
    content_text,
    decode_body,
    thinking_of,
    unsupported,
)
from cortex_gateway.projection import Ask, CallInfo, Reply, Turn
from cortex_gateway.sampling_defaults import OPENAI
from cortex_gateway.tool_calls import ParsedCall
from cortex_wire.messages import (
    ChatMessage,
    SamplingParams,
    StoredResponse,
    TokenLogprob,
    ToolCall,
)

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
    output: str | list[ContentPart] | None = None  # a function_call_output's
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
    verbosity: str | None = None  # "medium", the default, changes nothing


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
    # Extra output to include; of these, only scored output text changes anything here.
    include: list[str] | None = None
    top_logprobs: int | None = None
    # "auto": a conversation longer than the context loses its oldest turns until it fits.
    truncation: str | None = None
    # Refused unless they change nothing (see parse_request).
    conversation: str | dict[str, Any] | None = None
    background: bool | None = None
    prompt: dict[str, Any] | None = None  # a stored prompt template


# The `include` value asking for each output text token's log probability.
INCLUDE_LOGPROBS = "message.output_text.logprobs"


def scored(request: ResponsesRequest) -> bool:
    return INCLUDE_LOGPROBS in (request.include or []) or request.top_logprobs is not None


def parse_request(body: bytes) -> ResponsesRequest:
    request: ResponsesRequest = decode_body(body, ResponsesRequest)
    if not request.model:
        raise ApiError.invalid("model must not be empty", param="model")
    openai_forced(request.tool_choice, RESPONSES_NAME)  # refuses a choice it cannot read
    for index, tool in enumerate(request.tools or []):
        if tool.type != "function":
            raise unsupported(f"tools[{index}].type", f"{tool.type!r}; only function tools")
    check_tool_names([tool.name or "" for tool in request.tools or []], "name")
    effort = request.reasoning.effort if request.reasoning else None
    if effort is not None and effort not in EFFORT_BUDGETS:
        raise ApiError.invalid(
            f"reasoning.effort must be one of {', '.join(EFFORT_BUDGETS)}",
            param="reasoning.effort",
        )
    if request.conversation is not None:
        raise unsupported("conversation", "no conversations are kept; use previous_response_id")
    if request.background:
        raise unsupported("background", "a response runs while the request waits (stream it)")
    if request.prompt is not None:
        raise unsupported("prompt", "no prompt templates are kept; send the input")
    if request.text and request.text.verbosity not in (None, "medium"):
        raise unsupported("text.verbosity", "the model writes as it writes (only 'medium')")
    fmt = request.text.format if request.text else None
    if fmt is not None and fmt.type not in ("text", "json_object", "json_schema"):
        raise ApiError.invalid(f"unknown text.format type {fmt.type!r}", param="text.format.type")
    if request.truncation not in (None, "auto", "disabled"):
        raise ApiError.invalid("truncation must be 'auto' or 'disabled'", param="truncation")
    check_positive("max_output_tokens", request.max_output_tokens)
    check_top("top_logprobs", request.top_logprobs)
    check_range("temperature", request.temperature, 0.0, 2.0)
    check_range("top_p", request.top_p, 0.0, 1.0)
    input_messages(request)  # validates the input items
    return request


def chat_messages(
    request: ResponsesRequest, history: Sequence[ChatMessage] = ()
) -> list[ChatMessage]:
    """What the template gets: the instructions, the conversation so far (a previous
    response's), then this request's input."""
    messages = [*history, *input_messages(request)]
    if request.instructions:
        messages.insert(0, ChatMessage(role="system", content=request.instructions))
    return messages


def input_messages(request: ResponsesRequest) -> list[ChatMessage]:
    messages: list[ChatMessage] = []
    if isinstance(request.input, str):
        return [ChatMessage(role="user", content=request.input)]
    if not request.input:
        raise ApiError.invalid("input must not be empty", param="input")
    reasoning = ""  # a reasoning item belongs to the assistant output that follows it
    for index, item in enumerate(request.input):
        where = f"input[{index}]"
        if item.type == "message":
            if item.role not in ("user", "assistant", "system", "developer"):
                raise ApiError.invalid(f"unknown role {item.role!r}", param=f"{where}.role")
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
            output = _tool_output(item.output, f"{where}.output")
            messages.append(
                ChatMessage(role="tool", content=output, tool_call_id=item.call_id or "")
            )
        elif item.type == "reasoning":
            # Its text, else its summary, goes back with the turn (the template decides).
            parts = item.content or item.summary
            reasoning += content_text(parts, f"{where}.content", REASONING_KINDS) if parts else ""
        else:
            raise unsupported(f"{where}.type", f"{item.type!r} input items")
    return messages


def _tool_output(output: str | list[ContentPart] | None, where: str) -> str:
    """A function's output as text: a string, or parts (an image or a file in them named in
    its place: the model reads text only, and the output stays in the conversation)."""
    if isinstance(output, list):
        output = [
            ContentPart(type="input_text", text=f"[{omitted} omitted: the model reads text only]")
            if (omitted := part.type.removeprefix("input_")) in ("image", "file")
            else part
            for part in output
        ]
    return content_text(output, where, TEXT_KINDS)


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


def item_id(part: Part) -> str:
    """An output item's id, from its part's."""
    prefix = "fc_" if part.call is not None else "rs_" if part.kind == "reasoning" else "msg_"
    return prefix + part.id


def item_of(part: Part, status: str, logprobs: bool = False) -> dict[str, Any]:
    """An output item as it stands."""
    if part.call is not None:
        call = part.call
        return {"type": "function_call", "id": item_id(part), "call_id": call.id,
                "name": call.name, "arguments": call.arguments, "status": status}  # fmt: skip
    if part.kind == "reasoning":
        content = [{"type": "reasoning_text", "text": part.text}]
        return {"type": "reasoning", "id": item_id(part), "summary": [], "content": content,
                "status": status}  # fmt: skip
    return {
        "type": "message", "id": item_id(part), "status": status, "role": "assistant",
        "content": [_output_text(part, logprobs)],
    }  # fmt: skip


def _output_text(part: Part, logprobs: bool) -> dict[str, Any]:
    scores = token_entries(part.logprobs) if logprobs else []
    return {"type": "output_text", "text": part.text, "annotations": [], "logprobs": scores}


def cut_status(status: str, part: Part, last: bool = True) -> str:
    """An item's status once the response has `status`: a call whose arguments never
    ended is "incomplete" (a limit cut it off: the stream says so when the call closes,
    before the response's end is known); the last text or reasoning item is "incomplete"
    when the response is."""
    if status == "in_progress":
        return status
    if part.kind == "call":
        return "completed" if _whole(part.call) else "incomplete"
    return "incomplete" if status == "incomplete" and last else "completed"


def _whole(call: ParsedCall | None) -> bool:
    try:
        return call is not None and isinstance(json.loads(call.arguments), dict)
    except ValueError:
        return False


def response_body(answer: Answer, call: CallInfo, request: ResponsesRequest) -> dict[str, Any]:
    usage, finished = answer.usage, answer.finished
    status = "in_progress" if finished is None else (
        "incomplete" if finished.stop in CUT_SHORT else "completed"
    )  # fmt: skip
    last = len(answer.parts) - 1
    return {
        "id": call.request_id,
        "object": "response",
        "created_at": call.created,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": request.instructions,
        "model": call.model,
        "output": [
            item_of(part, cut_status(status, part, index == last), scored(request))
            for index, part in enumerate(answer.parts)
        ],
        "top_logprobs": request.top_logprobs,
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "tool_choice": request.tool_choice or "auto",
        "tools": [msgspec.to_builtins(t) for t in request.tools or []],
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_output_tokens": request.max_output_tokens,
        "metadata": request.metadata or {},
        "previous_response_id": request.previous_response_id,
        "store": request.store is not False,
        "usage": {
            "input_tokens": usage.prompt_tokens,
            "input_tokens_details": {"cached_tokens": usage.cached_tokens},
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        },
    }


class ResponsesStream:
    """Numbered events: the response created, each output item added, grown and done,
    then the response completed (or incomplete) whole."""

    def __init__(self, call: CallInfo, request: ResponsesRequest) -> None:
        self.call = call
        self.request = request
        self.sequence = 0
        self.open: Part | None = None  # the text or reasoning item being written

    def _event(self, kind: str, **payload: Any) -> bytes:
        body = {"type": kind, "sequence_number": self.sequence, **payload}
        self.sequence += 1
        return sse.event(kind, body)

    def opening(self) -> list[bytes]:
        snapshot = response_body(Answer(), self.call, self.request)
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def _close(self, index: int, status: str = "completed") -> list[bytes]:
        part, self.open = self.open, None
        if part is None:
            return []
        item = item_of(part, cut_status(status, part), scored(self.request))
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        if part.kind == "reasoning":
            chunks = [self._event("response.reasoning_text.done", **where, text=part.text)]
        else:
            scores = item["content"][0]["logprobs"]
            chunks = [
                self._event("response.output_text.done", **where, text=part.text, logprobs=scores),
                self._event("response.content_part.done", **where, part=item["content"][0]),
            ]
        return [*chunks, self._event("response.output_item.done", output_index=index, item=item)]

    def _added(self, part: Part, index: int) -> list[bytes]:
        item = item_of(part, "in_progress")
        if part.kind != "call":
            item["content"] = []
        chunks = [self._event("response.output_item.added", output_index=index, item=item)]
        if part.kind == "text":
            chunks.append(self._event(
                "response.content_part.added", item_id=item["id"], output_index=index,
                content_index=0, part={"type": "output_text", "text": "", "annotations": []},
            ))  # fmt: skip
        return chunks

    def _text(
        self, kind: str, text: str, answer: Answer, logprobs: tuple[TokenLogprob, ...] = ()
    ) -> list[bytes]:
        part, index = answer.parts[-1], len(answer.parts) - 1
        chunks: list[bytes] = []
        if self.open is not part:
            chunks += self._close(index - 1)
            self.open = part
            chunks += self._added(replace(part, text=""), index)
        where = {"item_id": item_id(part), "output_index": index, "content_index": 0}
        if kind == "reasoning":
            return [*chunks, self._event("response.reasoning_text.delta", **where, delta=text)]
        return [*chunks, self._event("response.output_text.delta", **where, delta=text,
                                     logprobs=token_entries(logprobs))]  # fmt: skip

    def encode(self, event: Event, answer: Answer) -> list[bytes]:
        index = len(answer.parts) - 1
        if isinstance(event, Waiting):
            return [sse.KEEPALIVE]
        if isinstance(event, Text):
            return self._text("text", event.text, answer, event.logprobs)
        if isinstance(event, ReasoningEvent):
            return self._text("reasoning", event.text, answer)
        if isinstance(event, CallOpened):
            return [*self._close(index - 1), *self._added(answer.parts[-1], index)]
        if isinstance(event, CallArguments):
            return [self._event("response.function_call_arguments.delta",
                                item_id=item_id(answer.parts[-1]),
                                output_index=index, delta=event.text)]  # fmt: skip
        if isinstance(event, CallClosed):
            item = item_of(answer.parts[-1], cut_status("completed", answer.parts[-1]))
            done = self._event(
                "response.function_call_arguments.done", item_id=item["id"],
                output_index=index, arguments=event.call.arguments, name=event.call.name,
            )  # fmt: skip
            return [done, self._event("response.output_item.done", output_index=index, item=item)]
        if isinstance(event, Finished):
            body = response_body(answer, self.call, self.request)
            kind = "response.incomplete" if body["status"] == "incomplete" else "response.completed"
            return [*self._close(index, body["status"]), self._event(kind, response=body)]
        return []

    def failure(self, error: ApiError, answer: Answer) -> list[bytes]:
        """An `error` event, then the response as it stood, failed (the stream's last)."""
        failed = {
            **response_body(answer, self.call, self.request), "status": "failed",
            "error": {"code": error.code or "server_error", "message": error.message},
        }  # fmt: skip
        return [
            self._event("error", code=error.code, message=error.message, param=error.param),
            self._event("response.failed", response=failed),
        ]


# Keeps a finished response (its id, model, body and conversation) before the client
# hears it is done, so a next turn that names it always finds it.
Save = Callable[[StoredResponse], Awaitable[None]]


def without_oldest_turn(messages: Sequence[ChatMessage]) -> list[ChatMessage] | None:
    """`truncation: "auto"`: the conversation without its oldest turn (the first message
    after the system ones, up to the next user message: a call and its result go
    together), or None when only the last turn is left."""
    start = next((i for i, m in enumerate(messages) if m.role != "system"), len(messages))
    end = next((i for i in range(start + 1, len(messages)) if messages[i].role == "user"), None)
    if end is None:
        return None
    return [*messages[:start], *messages[end:]]


def output_messages(answer: Answer) -> list[ChatMessage]:
    """The answer as the assistant turn a next request's template gets."""
    calls = [ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in answer.calls]
    return [
        ChatMessage(
            role="assistant", content=answer.text, tool_calls=calls, reasoning=answer.reasoning
        )
    ]


def listed_inputs(request: ResponsesRequest) -> list[dict[str, Any]]:
    """The request's input as the API lists input items: each with an id and a status,
    a message's text as content parts."""
    given = request.input
    if isinstance(given, str):
        given = [Item(role="user", content=given)]
    items = []
    for item in given:
        listed = {k: v for k, v in msgspec.to_builtins(item).items() if v is not None}
        if isinstance(item.content, str):
            kind = "output_text" if item.role == "assistant" else "input_text"
            listed["content"] = [{"type": kind, "text": item.content}]
        prefix = "msg" if item.type == "message" else item.type.split("_")[0][:4]
        items.append({"id": f"{prefix}_{uuid.uuid4().hex[:24]}", **listed, "status": "completed"})
    return items


def stored(
    answer: Answer, call: CallInfo, request: ResponsesRequest, history: Sequence[ChatMessage]
) -> StoredResponse:
    conversation = [*history, *input_messages(request), *output_messages(answer)]
    body = response_body(answer, call, request)
    return StoredResponse(
        id=call.request_id, model=call.model, body=body, conversation=conversation,
        input_items=listed_inputs(request),
    )  # fmt: skip


def input_items_page(
    items: Sequence[dict[str, object]], order: str, limit: int, after: str
) -> dict[str, Any]:
    """GET /v1/responses/{id}/input_items: a page of the stored input items (newest first
    unless `order` is "asc"), `limit` of them, after the item with id `after`."""
    if order not in ("asc", "desc"):
        raise ApiError.invalid("order must be asc or desc", param="order")
    if not 1 <= limit <= 100:
        raise ApiError.invalid("limit must be between 1 and 100", param="limit")
    ordered = list(items) if order == "asc" else list(reversed(items))
    ids = [item.get("id") for item in ordered]
    if after:
        if after not in ids:
            raise ApiError.invalid(f"no input item {after!r} in this response", param="after")
        ordered = ordered[ids.index(after) + 1 :]
    page = ordered[:limit]
    return {
        "object": "list", "data": page, "has_more": len(ordered) > limit,
        "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None,
    }  # fmt: skip


def responses_reply(
    request: ResponsesRequest, history: Sequence[ChatMessage] = (), save: Save | None = None
) -> Reply:
    async def keep(answer: Answer, call: CallInfo) -> None:
        assert save is not None  # only set as on_finish with a save
        await save(stored(answer, call, request, history))

    return Reply(
        encoder=lambda call: ResponsesStream(call, request),
        body=lambda answer, call: response_body(answer, call, request),
        on_finish=keep if save is not None else None,
    )


def turn(
    parsed: ResponsesRequest, history: Sequence[ChatMessage] = (), save: Save | None = None
) -> Turn:
    """The request as a turn: after `history` (the conversation a previous response
    ended), kept by `save` once it is done (with store, the default)."""
    ask = Ask(
        messages=chat_messages(parsed, history),
        params=sampling_params(parsed),
        tools=template_tools(parsed),
        logprobs=(parsed.top_logprobs or 0) if scored(parsed) else None,
        single_call=parsed.parallel_tool_calls is False,
        **thinking_of(parsed.reasoning.effort if parsed.reasoning else None),
    )
    return Turn(
        route="responses",
        model=parsed.model,
        stream=parsed.stream,
        ask=allowing(ask, parsed.tool_choice, RESPONSES_NAME),
        reply=responses_reply(parsed, history, save if parsed.store is not False else None),
        request_prefix="resp_",
    )
