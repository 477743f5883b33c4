"""OpenAI legacy completions: a raw prompt in, text out (pure).

The prompt is tokenised as is (no chat template). Reasoning is not shown unless the client
asks for it inline with `x-include-thinking`; a tool-call block stays text.
"""

from __future__ import annotations

from typing import Any

import msgspec

from cortex_core.config import GatewaySettings
from cortex_gateway import sse
from cortex_gateway.errors import ApiError
from cortex_gateway.events import Answer, Event, Finished, Text, Waiting
from cortex_gateway.openai_chat import (
    StreamOptions,
    check_positive,
    check_range,
    decode_body,
    finish_reason,
    logit_biases,
    unsupported,
    usage_body,
)
from cortex_gateway.projection import Ask, CallInfo, Reply, Turn
from cortex_gateway.sampling_defaults import OPENAI
from cortex_wire.messages import SamplingParams

# OpenAI's own default for this endpoint.
DEFAULT_MAX_TOKENS = 16


class CompletionRequest(msgspec.Struct, kw_only=True):
    model: str
    prompt: str | list[str]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    n: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repeat_penalty: float | None = None
    user: str | None = None
    echo: bool | None = None
    suffix: str | None = None
    logprobs: int | None = None
    best_of: int | None = None
    logit_bias: dict[str, float] | None = None


def parse_request(body: bytes) -> CompletionRequest:
    request: CompletionRequest = decode_body(body, CompletionRequest)
    if not request.model:
        raise ApiError.invalid("model must not be empty", param="model")
    if isinstance(request.prompt, list) and len(request.prompt) != 1:
        raise unsupported("prompt", "exactly one prompt per request")
    for name, value, allowed in (
        ("n", request.n, (None, 1)),
        ("best_of", request.best_of, (None, 1)),
        ("echo", request.echo, (None, False)),
        ("logprobs", request.logprobs, (None,)),
    ):
        if value not in allowed:
            raise unsupported(name)
    check_positive("max_tokens", request.max_tokens)
    check_range("temperature", request.temperature, 0.0, 2.0)
    check_range("top_p", request.top_p, 0.0, 1.0)
    check_range("presence_penalty", request.presence_penalty, -2.0, 2.0)
    check_range("frequency_penalty", request.frequency_penalty, -2.0, 2.0)
    stops = [request.stop] if isinstance(request.stop, str) else (request.stop or [])
    if len(stops) > 4:
        raise ApiError.invalid("at most 4 stop sequences are supported", param="stop")
    return request


def prompt_text(request: CompletionRequest) -> str:
    return request.prompt if isinstance(request.prompt, str) else request.prompt[0]


def sampling_params(request: CompletionRequest) -> SamplingParams:
    stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    return SamplingParams(
        max_tokens=request.max_tokens or DEFAULT_MAX_TOKENS,
        temperature=OPENAI.temperature if request.temperature is None else request.temperature,
        top_p=OPENAI.top_p if request.top_p is None else request.top_p,
        top_k=request.top_k or OPENAI.top_k,
        min_p=request.min_p or OPENAI.min_p,
        seed=request.seed,
        stop=stops,
        repeat_penalty=request.repeat_penalty or OPENAI.repeat_penalty,
        presence_penalty=request.presence_penalty or 0.0,
        frequency_penalty=request.frequency_penalty or 0.0,
        logit_bias=logit_biases(request.logit_bias),
    )


class CompletionStream:
    """Text completion chunks; reasoning shows only inline, on request (this API has no
    field of its own for it), and a call is written back as the model's text."""

    def __init__(self, call: CallInfo, include_usage: bool) -> None:
        self.call = call
        self.include_usage = include_usage

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return sse.data({**_envelope(self.call, choices), **extra})

    def opening(self) -> list[bytes]:
        return []

    def encode(self, event: Event, answer: Answer) -> list[bytes]:
        if isinstance(event, Waiting):
            return [sse.KEEPALIVE]
        if isinstance(event, Text):
            return [self._chunk([_choice(event.text, None)])]
        if isinstance(event, Finished):
            chunks = [self._chunk([_choice("", finish_reason(answer))])]
            if self.include_usage:
                chunks.append(self._chunk([], usage=usage_body(event.usage)))
            return [*chunks, sse.DONE]
        return []

    def failure(self, error: ApiError, answer: Answer) -> list[bytes]:
        return [sse.data(error.openai_body()), sse.DONE]


def _choice(text: str, reason: str | None) -> dict[str, Any]:
    return {"text": text, "index": 0, "logprobs": None, "finish_reason": reason}


def _envelope(call: CallInfo, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": call.request_id, "object": "text_completion", "created": call.created,
        "model": call.model, "choices": choices,
    }  # fmt: skip


def completion_body(answer: Answer, call: CallInfo) -> dict[str, Any]:
    choice = _choice(answer.text, finish_reason(answer))
    return {**_envelope(call, [choice]), "usage": usage_body(answer.usage)}


def completion_reply(include_usage: bool) -> Reply:
    return Reply(
        encoder=lambda call: CompletionStream(call, include_usage), body=completion_body,
        inline_thinking=True, calls_as_text=True,
    )  # fmt: skip


def turn(body: bytes, settings: GatewaySettings) -> Turn:
    legacy = parse_request(body)
    include_usage = bool(legacy.stream_options and legacy.stream_options.include_usage)
    return Turn(
        route="completions",
        model=legacy.model,
        stream=legacy.stream,
        ask=Ask(
            prompt=prompt_text(legacy), params=sampling_params(legacy), suffix=legacy.suffix or None
        ),
        reply=completion_reply(include_usage),
        request_prefix="cmpl-",
    )
