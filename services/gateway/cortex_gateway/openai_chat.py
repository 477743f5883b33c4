"""OpenAI chat completions: request translation and the response projection (pure)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

import msgspec

from cortex_core.config import GatewaySettings
from cortex_gateway import sse
from cortex_gateway.errors import ApiError
from cortex_gateway.events import (
    Answer,
    CallArguments,
    CallOpened,
    Event,
    Finished,
    Reasoning,
    Stop,
    Text,
    Waiting,
)
from cortex_gateway.forced_calls import CHAT_NAME, allowing, openai_forced
from cortex_gateway.foreign_params import check_foreign
from cortex_gateway.logprobs import check_top, token_entries
from cortex_gateway.projection import Ask, CallInfo, Reply, Turn
from cortex_gateway.sampling_defaults import OPENAI
from cortex_gateway.tool_calls import ParsedCall
from cortex_wire.messages import ChatMessage, SamplingParams, TokenLogprob, ToolCall, Usage
from cortex_wire.outcomes import Code

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
# reasoning_effort → reasoning tokens before the neuron closes the reasoning itself (None:
# no bound).
EFFORT_BUDGETS: dict[str, int | None] = {
    "none": 0, "minimal": 128, "low": 512, "medium": 2048, "high": 8192, "xhigh": 16384,
    "max": None,
}  # fmt: skip
# reasoning_effort → the effort level a model's template takes (its own words); above
# "high" (xhigh, max) templates have no word but "high".
EFFORT_LEVELS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}


def thinking_of(effort: str | None) -> dict[str, Any]:
    """InferRequest fields for a reasoning effort: the thinking switch and effort level
    (the neuron sets whichever template variables the model has for them)."""
    if effort is None:
        return {}
    if effort == "none":
        return {"thinking": False}
    return {"thinking": True, "reasoning_effort": EFFORT_LEVELS.get(effort, "high")}


class ContentPart(msgspec.Struct, kw_only=True):
    type: str
    text: str | None = None
    refusal: str | None = None  # an assistant's "refusal" part


class FunctionCall(msgspec.Struct, kw_only=True):
    name: str
    arguments: str = "{}"


class MessageToolCall(msgspec.Struct, kw_only=True):
    id: str
    function: FunctionCall
    type: str = "function"


class Message(msgspec.Struct, kw_only=True):
    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = None
    # Reasoning an assistant turn wrote (as this API returns it), for the model's template;
    # `reasoning` is vLLM's newer name for it (and OpenRouter's).
    reasoning_content: str | None = None
    reasoning: str | None = None


class StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool = False


class FunctionDef(msgspec.Struct, kw_only=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolDef(msgspec.Struct, kw_only=True):
    type: str
    function: FunctionDef


class JsonSchemaFormat(msgspec.Struct, kw_only=True):
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class ResponseFormat(msgspec.Struct, kw_only=True):
    type: str
    json_schema: JsonSchemaFormat | None = None


class ChatCompletionRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: list[Message]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repeat_penalty: float | None = None
    repetition_penalty: float | None = None
    n: int | None = None
    user: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    tools: list[ToolDef] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None  # false: at most one call
    response_format: ResponseFormat | None = None
    reasoning_effort: str | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    # Accepted only in the values that do not change the output (rejected otherwise).
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    verbosity: str | None = None  # "medium", the default, changes nothing
    # The legacy function calling: refused (its reply would need `function_call`).
    functions: list[Any] | None = None
    function_call: str | dict[str, Any] | None = None


# msgspec's words for a field an object lacks or should not have.
_NAMED_FIELD = re.compile(r"^Object (?:missing required|contains unknown) field `([^`]*)`")


def decode_error(error: msgspec.MsgspecError) -> ApiError:
    """Malformed JSON, or JSON that does not fit the request's schema (msgspec's
    ValidationError is a DecodeError too): then `param` is the field at fault, as
    msgspec names it ("$.messages[0].role" → "messages[0].role")."""
    text = str(error)
    if not isinstance(error, msgspec.ValidationError):
        return ApiError.invalid(f"request body is not valid JSON: {text}")
    text, where = error_at(error)
    where = where.removeprefix(".")
    named = _NAMED_FIELD.match(text)
    param = ".".join(p for p in (where, named.group(1) if named else "") if p) or None
    return ApiError.invalid(
        f"invalid request: {text}" + (f" (at {where})" if where else ""), param=param
    )


def error_at(error: msgspec.ValidationError) -> tuple[str, str]:
    """msgspec's words and the path they are at: "Expected `int`, got `str` - at `$.a[0]`"
    → ("Expected `int`, got `str`", ".a[0]"); "" for the whole value."""
    text, _, where = str(error).partition(" - at `$")
    return text, where.rstrip("`")


def decode_body(body: bytes, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(body, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        if not body.strip():  # msgspec says "truncated", which reads as a cut-off upload
            raise ApiError.invalid("request body is empty: send a JSON object") from None
        raise decode_error(error) from None
    except UnicodeDecodeError as error:  # msgspec checks UTF-8 only where a str is decoded
        raise ApiError.invalid(
            f"request body is not valid UTF-8 (byte {error.start} of a string)"
        ) from None
    except RecursionError:
        raise ApiError.invalid("request body is not valid JSON: nested too deeply") from None


def unsupported(name: str, why: str = "") -> ApiError:
    message = f"parameter {name!r} is not supported" + (f": {why}" if why else "")
    return ApiError.of(Code.UNSUPPORTED_PARAMETER, message, param=name)


def check_range(name: str, value: float | None, low: float, high: float) -> None:
    if value is None:
        return
    if not math.isfinite(value) or not low <= value <= high:
        raise ApiError.invalid(
            f"{name} must be between {low:g} and {high:g}, got {value!r}", param=name
        )


def logit_biases(biases: dict[str, float] | None) -> dict[int, float]:
    """OpenAI's logit_bias (token id, as a string, → bias from -100 to 100) as ids; whether
    an id is in the model's vocabulary only the neuron can tell."""
    parsed: dict[int, float] = {}
    for key, bias in (biases or {}).items():
        if not key.strip().isdigit():
            raise ApiError.invalid(
                f"logit_bias keys must be token ids, got {key!r}", param="logit_bias"
            )
        check_range(f"logit_bias[{key!r}]", bias, -100.0, 100.0)
        parsed[int(key)] = float(bias)
    return parsed


# The most choices one request may ask for: each takes a slot of its own.
MAX_CHOICES = 16


def check_choices(n: int | None) -> None:
    if n is not None and not 1 <= n <= MAX_CHOICES:
        raise ApiError.invalid(f"n must be between 1 and {MAX_CHOICES}, got {n}", param="n")


def check_tool_names(names: Sequence[str], name_at: str) -> None:
    """Each tool named, and named once: a call is matched to its tool by name. `name_at`
    is where a tool keeps it ("function.name", "name")."""
    seen: set[str] = set()
    for index, name in enumerate(names):
        where = f"tools[{index}].{name_at}"
        if not name:
            raise ApiError.invalid(f"{where} must not be empty", param=where)
        if not name.isprintable():  # a control character no template or grammar writes
            raise ApiError.invalid(f"{where}: {name!r} has a control character", param=where)
        if name in seen:
            raise ApiError.invalid(f"{where}: {name!r} names two tools", param=where)
        seen.add(name)


def check_positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ApiError.invalid(f"{name} must be at least 1, got {value}", param=name)


def parse_request(body: bytes) -> ChatCompletionRequest:
    request = decode_body(body, ChatCompletionRequest)
    check_foreign(body)
    validate(request)
    return request


def content_text(
    content: str | list[ContentPart] | None, where: str, kinds: tuple[str, ...]
) -> str:
    """The text of a message's content (a string, or text parts of the given `kinds`);
    any other part (an image, audio) is refused, naming where it is."""
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for index, part in enumerate(content):
        if part.type not in kinds:
            raise ApiError.invalid(
                f"content part type {part.type!r} is not supported by text models",
                param=f"{where}[{index}].type",
            )
        if part.text is None:
            raise ApiError.invalid(
                f"a {part.type!r} content part needs its text", param=f"{where}[{index}].text"
            )
        texts.append(part.text)
    return "".join(texts)


def _text_of(message: Message, index: int) -> str:
    content = message.content
    if message.role == "assistant" and isinstance(content, list):
        # A refusal the assistant wrote comes back as a part of its own (the SDK replays it).
        content = [
            ContentPart(type="text", text=part.refusal) if part.type == "refusal" else part
            for part in content
        ]
    return content_text(content, f"messages[{index}].content", ("text", "input_text"))


def _reject_unsupported(request: ChatCompletionRequest) -> None:
    check_choices(request.n)
    check_top("top_logprobs", request.top_logprobs)
    if request.top_logprobs is not None and not request.logprobs:
        raise ApiError.invalid("top_logprobs needs logprobs set to true", param="top_logprobs")
    if request.modalities and set(request.modalities) - {"text"}:
        raise unsupported("modalities", "text only")
    for name in ("audio", "prediction", "web_search_options"):
        if getattr(request, name):
            raise unsupported(name)
    if request.verbosity not in (None, "medium"):
        raise unsupported("verbosity", "the model writes as it writes (only 'medium')")
    for name in ("functions", "function_call"):
        if getattr(request, name) is not None:
            raise unsupported(name, "the legacy function calling; use `tools` / `tool_choice`")
    openai_forced(request.tool_choice, CHAT_NAME)  # refuses a choice it cannot read
    fmt = request.response_format
    if fmt is not None and fmt.type not in ("text", "json_object", "json_schema"):
        raise ApiError.invalid(
            f"unknown response_format type {fmt.type!r}", param="response_format.type"
        )
    if (
        fmt is not None
        and fmt.type == "json_schema"
        and not (fmt.json_schema and fmt.json_schema.schema)
    ):
        raise ApiError.invalid(
            "response_format json_schema needs a schema", param="response_format.json_schema"
        )
    if request.reasoning_effort is not None and request.reasoning_effort not in EFFORT_BUDGETS:
        raise ApiError.invalid(
            f"reasoning_effort must be one of {', '.join(EFFORT_BUDGETS)}",
            param="reasoning_effort",
        )
    for index, tool in enumerate(request.tools or []):
        if tool.type != "function":
            raise unsupported(f"tools[{index}].type", f"{tool.type!r}; only 'function' tools")
    check_tool_names([tool.function.name for tool in request.tools or []], "function.name")


def validate(request: ChatCompletionRequest) -> None:
    if not request.model:
        raise ApiError.invalid("model must not be empty", param="model")
    if not request.messages:
        raise ApiError.invalid("messages must contain at least one message", param="messages")
    for index, message in enumerate(request.messages):
        if message.role not in ROLES:
            raise ApiError.invalid(
                f"unknown role {message.role!r}; expected one of {', '.join(sorted(ROLES))}",
                param=f"messages[{index}].role",
            )
        if message.content == []:  # "" is a message (OpenAI takes it); no parts is not
            raise ApiError.invalid(
                f"messages[{index}].content must not be an empty array",
                param=f"messages[{index}].content",
            )
        if message.content is None and message.role != "assistant":  # its calls may be all
            raise ApiError.invalid(
                f"messages[{index}] ({message.role}) needs a content",
                param=f"messages[{index}].content",
            )
        if message.role == "tool" and not message.tool_call_id:
            raise ApiError.invalid(
                f"messages[{index}] (tool) needs the tool_call_id of the call it answers",
                param=f"messages[{index}].tool_call_id",
            )
        _text_of(message, index)  # rejects content parts a text model cannot take
    _reject_unsupported(request)
    check_positive("max_tokens", request.max_tokens)
    check_positive("max_completion_tokens", request.max_completion_tokens)
    check_range("temperature", request.temperature, 0.0, 2.0)
    check_range("top_p", request.top_p, 0.0, 1.0)
    check_range("min_p", request.min_p, 0.0, 1.0)
    check_range("presence_penalty", request.presence_penalty, -2.0, 2.0)
    check_range("frequency_penalty", request.frequency_penalty, -2.0, 2.0)
    check_range("repeat_penalty", request.repeat_penalty, 0.0, 10.0)
    check_range("repetition_penalty", request.repetition_penalty, 0.0, 10.0)
    if request.top_k is not None and request.top_k < 0:
        raise ApiError.invalid(f"top_k must be >= 0, got {request.top_k}", param="top_k")
    stops = [request.stop] if isinstance(request.stop, str) else (request.stop or [])
    if len(stops) > 4:
        raise ApiError.invalid("at most 4 stop sequences are supported", param="stop")


def chat_messages(request: ChatCompletionRequest) -> list[ChatMessage]:
    messages = []
    for index, message in enumerate(request.messages):
        calls = [
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
            for c in message.tool_calls or []
        ]
        messages.append(
            ChatMessage(
                role=message.role,
                content=_text_of(message, index),
                tool_calls=calls,
                tool_call_id=message.tool_call_id or "",
                name=message.name or "",
                reasoning=(message.reasoning_content or message.reasoning or "")
                if message.role == "assistant"
                else "",
            )
        )
    return messages


def template_tools(request: ChatCompletionRequest) -> list[dict[str, Any]]:
    if request.tool_choice == "none":
        return []
    return [msgspec.to_builtins(t) for t in request.tools or []]


def json_schema_of(fmt: ResponseFormat | None) -> dict[str, Any] | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "object"}
    assert fmt.json_schema is not None
    return fmt.json_schema.schema


def sampling_params(request: ChatCompletionRequest) -> SamplingParams:
    defaults = OPENAI
    stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    temperature = defaults.temperature if request.temperature is None else request.temperature
    repeat = request.repeat_penalty or request.repetition_penalty
    return SamplingParams(
        max_tokens=request.max_completion_tokens or request.max_tokens,
        temperature=temperature,
        top_p=defaults.top_p if request.top_p is None else request.top_p,
        top_k=defaults.top_k if request.top_k is None else request.top_k,
        min_p=defaults.min_p if request.min_p is None else request.min_p,
        seed=request.seed,
        stop=stops,
        repeat_penalty=defaults.repeat_penalty if repeat is None else repeat,
        presence_penalty=request.presence_penalty or 0.0,
        frequency_penalty=request.frequency_penalty or 0.0,
        reasoning_budget=EFFORT_BUDGETS.get(request.reasoning_effort or ""),
        json_schema=json_schema_of(request.response_format),
        logit_bias=logit_biases(request.logit_bias),
    )


def usage_body(usage: Usage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }
    if usage.cached_tokens:
        body["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens:
        body["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return body


FinishReason = Literal["stop", "length", "tool_calls"]
# A cancelled request has no client left to read it; "stop" keeps the shape valid.
FINISH_REASONS: dict[Stop, FinishReason] = {
    Stop.END: "stop", Stop.STOP_SEQUENCE: "stop", Stop.CANCELLED: "stop",
    Stop.LENGTH: "length", Stop.CONTEXT_FULL: "length", Stop.TOOL_CALLS: "tool_calls",
}  # fmt: skip


def finish_reason(answer: Answer) -> FinishReason:
    return FINISH_REASONS[answer.finished.stop] if answer.finished else "stop"


def tool_call_body(call: ParsedCall, index: int) -> dict[str, Any]:
    return {
        "index": index,
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def _envelope(call: CallInfo, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": call.request_id, "object": kind, "created": call.created, "model": call.model,
        "choices": choices,
    }  # fmt: skip


def logprobs_body(logprobs: list[TokenLogprob] | None) -> dict[str, Any] | None:
    """A choice's `logprobs`: the answer's tokens, scored (None: not asked for)."""
    return None if logprobs is None else {"content": token_entries(logprobs), "refusal": None}


class ChatStream:
    """Chat completion chunks: the role first, then deltas, the finish, usage, [DONE]."""

    def __init__(self, call: CallInfo, include_usage: bool, logprobs: bool = False) -> None:
        self.call = call
        self.include_usage = include_usage
        self.logprobs = logprobs
        self.started = False

    def _chunk(
        self, delta: dict[str, Any], reason: str | None = None,
        logprobs: dict[str, Any] | None = None,
    ) -> bytes:  # fmt: skip
        choice = {
            "index": self.call.choice, "delta": delta, "logprobs": logprobs,
            "finish_reason": reason,
        }  # fmt: skip
        return sse.data(_envelope(self.call, "chat.completion.chunk", [choice]))

    def _role(self) -> list[bytes]:
        """The first chunk, naming the role, unless it went out already."""
        if self.started:
            return []
        self.started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _delta(self, delta: dict[str, Any]) -> list[bytes]:
        if not self.started and "tool_calls" in delta:  # the first chunk carries the call
            self.started = True
            return [self._chunk({"role": "assistant", "content": None, **delta})]
        return [*self._role(), self._chunk(delta)]

    def opening(self) -> list[bytes]:
        return []

    def encode(self, event: Event, answer: Answer) -> list[bytes]:
        if isinstance(event, Waiting):
            return [sse.KEEPALIVE]
        if isinstance(event, Text):
            scored = logprobs_body(list(event.logprobs)) if self.logprobs else None
            return [*self._role(), self._chunk({"content": event.text}, None, scored)]
        if isinstance(event, Reasoning):
            return self._delta({"reasoning_content": event.text})
        if isinstance(event, CallOpened):
            index = len(answer.calls) - 1
            return self._delta({"tool_calls": [tool_call_body(event.call, index)]})
        if isinstance(event, CallArguments):
            part = {"index": len(answer.calls) - 1, "function": {"arguments": event.text}}
            return [self._chunk({"tool_calls": [part]})]
        if isinstance(event, Finished):
            chunks = [*self._role(), self._chunk({}, finish_reason(answer))]
            if self.call.choices > 1:  # several choices end together, once all are done
                return chunks
            return [*chunks, *chat_closing(self.include_usage)(self.call, event.usage)]
        return []

    def failure(self, error: ApiError, answer: Answer) -> list[bytes]:
        return [sse.data(error.openai_body()), sse.DONE]


def chat_closing(include_usage: bool) -> Callable[[CallInfo, Usage], list[bytes]]:
    """The end of a chat stream: the usage chunk (when asked for), then [DONE]."""

    def closing(call: CallInfo, usage: Usage) -> list[bytes]:
        if not include_usage:
            return [sse.DONE]
        body = {**_envelope(call, "chat.completion.chunk", []), "usage": usage_body(usage)}
        return [sse.data(body), sse.DONE]

    return closing


def chat_body(answer: Answer, call: CallInfo) -> dict[str, Any]:
    content = answer.text
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if answer.reasoning:
        message["reasoning_content"] = answer.reasoning
    if answer.calls:
        message["content"] = content or None
        message["tool_calls"] = [
            {k: v for k, v in tool_call_body(c, i).items() if k != "index"}
            for i, c in enumerate(answer.calls)
        ]
    choice = {"index": call.choice, "message": message, "logprobs": None,
              "finish_reason": finish_reason(answer)}  # fmt: skip
    return {**_envelope(call, "chat.completion", [choice]), "usage": usage_body(answer.usage)}


def scored_chat_body(answer: Answer, call: CallInfo) -> dict[str, Any]:
    body = chat_body(answer, call)
    body["choices"][0]["logprobs"] = logprobs_body(answer.logprobs)
    return body


def chat_reply(include_usage: bool, logprobs: bool = False) -> Reply:
    return Reply(
        encoder=lambda call: ChatStream(call, include_usage, logprobs),
        body=scored_chat_body if logprobs else chat_body,
        inline_thinking=True,
        closing=chat_closing(include_usage),
    )


def turn(body: bytes, settings: GatewaySettings) -> Turn:
    chat = parse_request(body)
    include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
    ask = Ask(
        messages=chat_messages(chat),
        params=sampling_params(chat),
        chat_template_kwargs=chat.chat_template_kwargs or {},
        tools=template_tools(chat),
        logprobs=(chat.top_logprobs or 0) if chat.logprobs else None,
        single_call=chat.parallel_tool_calls is False,
        **thinking_of(chat.reasoning_effort),
    )
    return Turn(
        route="chat",
        model=chat.model,
        stream=chat.stream,
        ask=allowing(ask, chat.tool_choice, CHAT_NAME),
        reply=chat_reply(include_usage, bool(chat.logprobs)),
        choices=chat.n or 1,
    )
