"""OpenAI chat completions: request validation and response shapes (pure)."""

from __future__ import annotations

import math
from typing import Any

import msgspec

from cortex_gateway.errors import ApiError
from cortex_wire.messages import ChatMessage, SamplingParams, Usage

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


class ContentPart(msgspec.Struct, kw_only=True):
    type: str
    text: str | None = None


class Message(msgspec.Struct, kw_only=True):
    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool = False


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
    n: int | None = None
    user: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None


def _decode_error(error: msgspec.MsgspecError) -> ApiError:
    text = str(error)
    param = None
    if " - at `$." in text:
        text, _, where = text.partition(" - at `$.")
        param = where.rstrip("`")
    if isinstance(error, msgspec.DecodeError) and param is None:
        return ApiError(400, f"request body is not valid JSON: {text}")
    return ApiError(
        400, f"invalid request: {text}" + (f" (at {param})" if param else ""), param=param
    )


def parse_request(body: bytes) -> ChatCompletionRequest:
    try:
        request = msgspec.json.decode(body, type=ChatCompletionRequest)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise _decode_error(error) from None
    validate(request)
    return request


def _text_of(message: Message, index: int) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    texts = []
    for part_index, part in enumerate(message.content):
        if part.type != "text" or part.text is None:
            raise ApiError(
                400,
                f"content part type {part.type!r} is not supported by text models",
                param=f"messages[{index}].content[{part_index}].type",
            )
        texts.append(part.text)
    return "".join(texts)


def _check_range(name: str, value: float | None, low: float, high: float) -> None:
    if value is None:
        return
    if not math.isfinite(value) or not low <= value <= high:
        raise ApiError(
            400, f"{name} must be between {low:g} and {high:g}, got {value!r}", param=name
        )


def validate(request: ChatCompletionRequest) -> None:
    if not request.model:
        raise ApiError(400, "model must not be empty", param="model")
    if not request.messages:
        raise ApiError(400, "messages must contain at least one message", param="messages")
    for index, message in enumerate(request.messages):
        if message.role not in ROLES:
            raise ApiError(
                400,
                f"unknown role {message.role!r}; expected one of {', '.join(sorted(ROLES))}",
                param=f"messages[{index}].role",
            )
        _text_of(message, index)  # rejects content parts a text model cannot take
    if request.n not in (None, 1):
        raise ApiError(400, "only n=1 is supported", param="n")
    for name in ("max_tokens", "max_completion_tokens"):
        value = getattr(request, name)
        if value is not None and value < 1:
            raise ApiError(400, f"{name} must be at least 1, got {value}", param=name)
    _check_range("temperature", request.temperature, 0.0, 2.0)
    _check_range("top_p", request.top_p, 0.0, 1.0)
    _check_range("min_p", request.min_p, 0.0, 1.0)
    _check_range("presence_penalty", request.presence_penalty, -2.0, 2.0)
    _check_range("frequency_penalty", request.frequency_penalty, -2.0, 2.0)
    _check_range("repeat_penalty", request.repeat_penalty, 0.0, 10.0)
    if request.top_k is not None and request.top_k < 0:
        raise ApiError(400, f"top_k must be >= 0, got {request.top_k}", param="top_k")
    stops = [request.stop] if isinstance(request.stop, str) else (request.stop or [])
    if len(stops) > 4:
        raise ApiError(400, "at most 4 stop sequences are supported", param="stop")


def chat_messages(request: ChatCompletionRequest) -> list[ChatMessage]:
    return [
        ChatMessage(role=m.role, content=_text_of(m, i)) for i, m in enumerate(request.messages)
    ]


def sampling_params(request: ChatCompletionRequest) -> SamplingParams:
    defaults = SamplingParams()
    stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    temperature = defaults.temperature if request.temperature is None else request.temperature
    return SamplingParams(
        max_tokens=request.max_completion_tokens or request.max_tokens,
        temperature=temperature,
        top_p=defaults.top_p if request.top_p is None else request.top_p,
        # OpenAI clients never send top_k/min_p: llama.cpp's defaults would silently narrow
        # their sampling, so only apply them when asked for.
        top_k=0 if request.top_k is None else request.top_k,
        min_p=0.0 if request.min_p is None else request.min_p,
        seed=request.seed,
        stop=stops,
        repeat_penalty=1.0 if request.repeat_penalty is None else request.repeat_penalty,
        presence_penalty=request.presence_penalty or 0.0,
        frequency_penalty=request.frequency_penalty or 0.0,
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


def finish_reason(reason: str) -> str:
    # A cancelled request has no client left to read it; "stop" keeps the shape valid.
    return "length" if reason == "length" else "stop"


def completion_body(
    *,
    request_id: str,
    model: str,
    created: int,
    message: dict[str, Any],
    reason: str,
    usage: Usage,
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(reason),
            }
        ],
        "usage": usage_body(usage),
    }


def chunk_body(
    *,
    request_id: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish_reason(reason) if reason else None,
            }
        ],
    }


def usage_chunk_body(*, request_id: str, model: str, created: int, usage: Usage) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage_body(usage),
    }
