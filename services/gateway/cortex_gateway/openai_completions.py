"""OpenAI legacy completions: a raw prompt in, text out (pure).

The prompt is tokenised as is (no chat template), or given as token ids. Reasoning is not
shown unless the client asks for it inline with `x-include-thinking`; a tool-call block
stays text. `echo` writes the prompt before the answer; with `logprobs` every token is
scored, the prompt's too (what evaluation harnesses score multiple choice by).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from cortex_core.config import GatewaySettings
from cortex_gateway import sse
from cortex_gateway.errors import ApiError
from cortex_gateway.events import Answer, Event, Finished, PromptScored, Text, Waiting
from cortex_gateway.foreign_params import check_foreign
from cortex_gateway.logprobs import TextOffsets, check_top, completion_logprobs
from cortex_gateway.openai_chat import (
    StreamOptions,
    check_choices,
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
from cortex_wire.messages import SamplingParams, TokenLogprob, Usage

# OpenAI's own default for this endpoint.
DEFAULT_MAX_TOKENS = 16
# The most generations one request starts (its prompts times n): each holds a slot or a place
# in the neuron's queue.
MAX_GENERATIONS = 64


class CompletionRequest(msgspec.Struct, kw_only=True):
    model: str
    # Text, token ids, or a list of one of either.
    prompt: str | list[str | int | list[int]]
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
    repetition_penalty: float | None = None  # vLLM's name for it
    user: str | None = None
    echo: bool | None = None
    suffix: str | None = None
    logprobs: int | None = None
    best_of: int | None = None
    logit_bias: dict[str, float] | None = None


def parse_request(body: bytes) -> CompletionRequest:
    request: CompletionRequest = decode_body(body, CompletionRequest)
    check_foreign(body)
    if not request.model:
        raise ApiError.invalid("model must not be empty", param="model")
    prompts = prompts_of(request)
    check_choices(request.n)
    if len(prompts) * (request.n or 1) > MAX_GENERATIONS:
        raise ApiError.invalid(
            f"at most {MAX_GENERATIONS} answers per request (prompts times n), got "
            f"{len(prompts)} prompts, n = {request.n or 1}", param="prompt",
        )  # fmt: skip
    if request.best_of not in (None, 1):
        raise unsupported("best_of", "choices are returned as generated (use n)")
    check_top("logprobs", request.logprobs)
    if request.max_tokens != 0 or not request.echo:  # 0 with echo: score the prompt only
        check_positive("max_tokens", request.max_tokens)
    check_range("temperature", request.temperature, 0.0, 2.0)
    check_range("top_p", request.top_p, 0.0, 1.0)
    check_range("presence_penalty", request.presence_penalty, -2.0, 2.0)
    check_range("frequency_penalty", request.frequency_penalty, -2.0, 2.0)
    check_range("min_p", request.min_p, 0.0, 1.0)
    check_range("repeat_penalty", request.repeat_penalty, 0.0, 10.0)
    check_range("repetition_penalty", request.repetition_penalty, 0.0, 10.0)
    stops = [request.stop] if isinstance(request.stop, str) else (request.stop or [])
    if len(stops) > 4:
        raise ApiError.invalid("at most 4 stop sequences are supported", param="stop")
    return request


Prompt = tuple[str | None, list[int] | None]  # its text, or its token ids


def prompts_of(request: CompletionRequest) -> list[Prompt]:
    """The request's prompts, as OpenAI takes them: a text, token ids, or a list of
    either (a batch: each prompt answered on its own)."""
    prompt = request.prompt
    if isinstance(prompt, str):
        return [(prompt, None)]
    if not prompt:
        raise ApiError.invalid("prompt must not be empty", param="prompt")
    if all(isinstance(item, int) for item in prompt):
        return [(None, [item for item in prompt if isinstance(item, int)])]
    prompts: list[Prompt] = []
    for index, item in enumerate(prompt):
        if isinstance(item, str):
            prompts.append((item, None))
        elif isinstance(item, list) and item:
            prompts.append((None, item))
        else:
            why = "is empty" if isinstance(item, list) else "is a number among prompts"
            raise ApiError.invalid(f"prompt[{index}] {why}", param=f"prompt[{index}]")
    return prompts


def sampling_params(request: CompletionRequest) -> SamplingParams:
    stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    return SamplingParams(
        max_tokens=DEFAULT_MAX_TOKENS if request.max_tokens is None else request.max_tokens,
        temperature=OPENAI.temperature if request.temperature is None else request.temperature,
        top_p=OPENAI.top_p if request.top_p is None else request.top_p,
        top_k=request.top_k or OPENAI.top_k,
        min_p=request.min_p or OPENAI.min_p,
        seed=request.seed,
        stop=stops,
        repeat_penalty=request.repeat_penalty
        or request.repetition_penalty
        or OPENAI.repeat_penalty,
        presence_penalty=request.presence_penalty or 0.0,
        frequency_penalty=request.frequency_penalty or 0.0,
        logit_bias=logit_biases(request.logit_bias),
    )


class Echo(msgspec.Struct, frozen=True):
    """What a completion writes besides the answer: the prompt first (`echo`; its text,
    or None when it came as token ids and its scored tokens spell it), and whether tokens
    are scored."""

    prompt: str | None = None
    echo: bool = False
    logprobs: bool = False

    def opening(self, answer: Answer) -> str:
        """The text before the answer."""
        if not self.echo:
            return ""
        if self.prompt is not None:
            return self.prompt
        return "".join(entry.token for entry in answer.prompt_logprobs)

    def start(self) -> int:
        """Where the answer's first token starts, in characters (the legacy API counts
        text_offset over the prompt and the answer)."""
        return 0 if self.echo else len(self.prompt or "")


NO_ECHO = Echo()


class CompletionStream:
    """Text completion chunks; reasoning shows only inline, on request (this API has no
    field of its own for it), and a call is written back as the model's text."""

    def __init__(self, call: CallInfo, include_usage: bool, echo: Echo = NO_ECHO) -> None:
        self.call = call
        self.include_usage = include_usage
        self.echo = echo
        self.offsets = TextOffsets(echo.start())

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return sse.data({**_envelope(self.call, choices), **extra})

    def _text(self, text: str, scored: tuple[TokenLogprob, ...] | list[TokenLogprob]) -> bytes:
        logprobs = None
        if self.echo.logprobs:
            logprobs = completion_logprobs(scored, self.offsets)
        return self._chunk([self._choice(text, None, logprobs)])

    def opening(self) -> list[bytes]:
        prompt = self.echo.opening(Answer())
        if not prompt or self.echo.logprobs:  # scored, the prompt comes with its tokens
            return []
        return [self._chunk([self._choice(prompt, None)])]

    def encode(self, event: Event, answer: Answer) -> list[bytes]:
        if isinstance(event, Waiting):
            return [sse.KEEPALIVE]
        if isinstance(event, PromptScored):
            return [self._text(self.echo.opening(answer), event.logprobs)] if self.echo.echo else []
        if isinstance(event, Text):
            return [self._text(event.text, event.logprobs)]
        if isinstance(event, Finished):
            end = [event.end_logprob] if event.end_logprob else []
            last = completion_logprobs(end, self.offsets) if self.echo.logprobs else None
            chunks = [self._chunk([self._choice("", finish_reason(answer), last)])]
            if self.call.choices > 1:  # several choices end together, once all are done
                return chunks
            return [*chunks, *completion_closing(self.include_usage)(self.call, event.usage)]
        return []

    def _choice(
        self, text: str, reason: str | None, logprobs: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return _choice(text, reason, logprobs, self.call.choice)

    def failure(self, error: ApiError, answer: Answer) -> list[bytes]:
        return [sse.data(error.openai_body()), sse.DONE]


def completion_closing(include_usage: bool) -> Callable[[CallInfo, Usage], list[bytes]]:
    """The end of a completion stream: the usage chunk (when asked for), then [DONE]."""

    def closing(call: CallInfo, usage: Usage) -> list[bytes]:
        if not include_usage:
            return [sse.DONE]
        return [sse.data({**_envelope(call, []), "usage": usage_body(usage)}), sse.DONE]

    return closing


def _choice(
    text: str, reason: str | None, logprobs: dict[str, Any] | None = None, index: int = 0
) -> dict[str, Any]:
    return {"text": text, "index": index, "logprobs": logprobs, "finish_reason": reason}


def _envelope(call: CallInfo, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": call.request_id, "object": "text_completion", "created": call.created,
        "model": call.model, "choices": choices,
    }  # fmt: skip


def completion_body(answer: Answer, call: CallInfo, echo: Echo = NO_ECHO) -> dict[str, Any]:
    logprobs = None
    if echo.logprobs:
        end = answer.finished.end_logprob if answer.finished else None
        scored = [*(answer.prompt_logprobs if echo.echo else []), *answer.logprobs]
        logprobs = completion_logprobs([*scored, *([end] if end else [])], echo.start())
    choice = _choice(
        echo.opening(answer) + answer.text, finish_reason(answer), logprobs, call.choice
    )
    return {**_envelope(call, [choice]), "usage": usage_body(answer.usage)}


def completion_reply(include_usage: bool, echoes: Sequence[Echo] = (NO_ECHO,)) -> Reply:
    """The answers to prompts whose `echoes` are these, in order (choices.py)."""

    def echo(call: CallInfo) -> Echo:  # each prompt's choices come together
        return echoes[call.choice * len(echoes) // call.choices]

    return Reply(
        encoder=lambda call: CompletionStream(call, include_usage, echo(call)),
        body=lambda answer, call: completion_body(answer, call, echo(call)),
        inline_thinking=True, calls_as_text=True, closing=completion_closing(include_usage),
    )  # fmt: skip


def turn(body: bytes, settings: GatewaySettings) -> Turn:
    legacy = parse_request(body)
    include_usage = bool(legacy.stream_options and legacy.stream_options.include_usage)
    prompts = prompts_of(legacy)
    scored = legacy.logprobs is not None
    params = sampling_params(legacy)
    asks = [
        Ask(
            prompt=text,
            prompt_tokens=tokens,
            params=params,
            suffix=legacy.suffix or None,
            logprobs=legacy.logprobs,
            # Echoed token ids are written back as the text their scored tokens spell.
            prompt_logprobs=bool(legacy.echo) and (scored or tokens is not None),
        )
        for text, tokens in prompts
    ]
    echoes = [Echo(text, bool(legacy.echo), scored) for text, _ in prompts]
    return Turn(
        route="completions",
        model=legacy.model,
        stream=legacy.stream,
        ask=asks[0],
        asks=tuple(asks) if len(asks) > 1 else (),
        reply=completion_reply(include_usage, echoes),
        choices=(legacy.n or 1) * len(asks),
        request_prefix="cmpl-",
    )
