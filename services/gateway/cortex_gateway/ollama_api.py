"""Ollama's API (`/api/chat`, `/api/generate`, `/api/tags`, `/api/ps`, `/api/show`,
`/api/version`), on the same projection core as the other dialects.

Many clients speak only Ollama (Open WebUI, editor plugins, scripts). Streams are NDJSON,
one JSON object per line, the last with `done: true` and Ollama's counts and durations
(nanoseconds). Reasoning goes to `message.thinking` (`thinking` for generate), never into
the content; tool calls arrive whole, with their arguments as an object. Errors are
`{"error": "…"}`. Sampling follows Ollama's documented defaults.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from cortex_core.config import GatewaySettings
from cortex_core.fleet import CatalogueView, is_pattern
from cortex_gateway.errors import ApiError
from cortex_gateway.events import (
    CUT_SHORT,
    Answer,
    CallClosed,
    Event,
    Finished,
    Reasoning,
    Text,
)
from cortex_gateway.keep_alive import residency
from cortex_gateway.logprobs import check_top, token_entries
from cortex_gateway.openai_chat import EFFORT_BUDGETS, EFFORT_LEVELS, decode_body
from cortex_gateway.projection import Ask, CallInfo, Reply, Turn
from cortex_gateway.sampling_defaults import OLLAMA
from cortex_gateway.tool_calls import ParsedCall
from cortex_wire.messages import ChatMessage, SamplingParams, ToolCall

VERSION = "0.12.0"  # the Ollama API version these routes follow
NDJSON = "application/x-ndjson"
# Options that tune the runtime, not the output: accepted, left to the neuron's settings.
RUNTIME_OPTIONS = frozenset(
    {"num_ctx", "num_batch", "num_gpu", "main_gpu", "num_thread", "use_mmap", "use_mlock",
     "numa", "low_vram", "num_keep", "vocab_only", "f16_kv", "logits_all"}
)  # fmt: skip


class Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None
    num_predict: int | None = None
    stop: list[str] | str | None = None
    repeat_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


class Function(msgspec.Struct, kw_only=True):
    name: str
    arguments: dict[str, Any] | str = msgspec.field(default_factory=dict)


class Call(msgspec.Struct, kw_only=True):
    function: Function
    id: str | None = None


class Message(msgspec.Struct, kw_only=True):
    role: str
    content: str = ""
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[Call] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class ChatRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: list[Message] = msgspec.field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    think: bool | str | None = None
    format: str | dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    stream: bool = True
    keep_alive: str | float | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None


class GenerateRequest(msgspec.Struct, kw_only=True):
    model: str
    prompt: str = ""
    system: str | None = None
    suffix: str | None = None
    template: str | None = None
    raw: bool = False
    images: list[str] | None = None
    think: bool | str | None = None
    format: str | dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    stream: bool = True
    keep_alive: str | float | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    context: list[int] | None = None


# --- requests -----------------------------------------------------------------------------


def _refuse(param: str, what: str) -> ApiError:
    return ApiError.invalid(f"{param}: {what} is not supported", param=param)


def sampling_params(
    options: dict[str, Any] | None, fmt: str | dict[str, Any] | None
) -> SamplingParams:
    raw = dict(options or {})
    for name in sorted(raw):
        if name in RUNTIME_OPTIONS:
            raw.pop(name)
        elif name not in Options.__struct_fields__ and raw[name] is not None:
            raise _refuse(f"options.{name}", "this sampling option")
    try:
        opts = msgspec.convert(raw, Options)
    except msgspec.ValidationError as error:
        raise ApiError.invalid(f"options: {error}", param="options") from None
    stops = [opts.stop] if isinstance(opts.stop, str) else list(opts.stop or [])
    limit = opts.num_predict if opts.num_predict is not None and opts.num_predict > 0 else None

    def pick(name: str) -> Any:
        value = getattr(opts, name)
        return getattr(OLLAMA, name) if value is None else value

    return SamplingParams(
        max_tokens=limit,
        temperature=pick("temperature"),
        top_p=pick("top_p"),
        top_k=pick("top_k"),
        min_p=pick("min_p"),
        seed=opts.seed,
        stop=stops,
        repeat_penalty=pick("repeat_penalty"),
        presence_penalty=opts.presence_penalty or 0.0,
        frequency_penalty=opts.frequency_penalty or 0.0,
        json_schema=_schema_of(fmt),
    )


def _schema_of(fmt: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        return {"type": "object"}
    if isinstance(fmt, dict):
        return fmt
    raise ApiError.invalid(f'format must be "json" or a JSON schema, not {fmt!r}', param="format")


def thinking_of(think: bool | str | None) -> dict[str, Any]:
    """`think`: true / false, or an effort level ("low", "medium", "high")."""
    if think is None:
        return {}
    if isinstance(think, bool):
        return {"thinking": think}
    if think not in EFFORT_LEVELS:
        raise ApiError.invalid("think must be true, false, low, medium or high", param="think")
    return {"thinking": True, "reasoning_effort": EFFORT_LEVELS[think]}


def _budget(think: bool | str | None) -> int | None:
    return EFFORT_BUDGETS.get(think) if isinstance(think, str) else None


def _arguments(arguments: dict[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def chat_messages(messages: list[Message]) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if message.role not in ("system", "user", "assistant", "tool"):
            raise ApiError.invalid(f"unknown role {message.role!r}", param=f"{where}.role")
        if message.images:
            raise _refuse(f"{where}.images", "an image (text models only)")
        calls = [
            ToolCall(id=c.id or f"call_{index}_{n}", name=c.function.name,
                     arguments=_arguments(c.function.arguments))
            for n, c in enumerate(message.tool_calls or [])
        ]  # fmt: skip
        out.append(
            ChatMessage(
                role=message.role,
                content=message.content,
                tool_calls=calls,
                tool_call_id=message.tool_call_id or "",
                name=message.tool_name or "",
                reasoning=message.thinking or "",
            )
        )
    _pair_tool_results(out)
    return out


def _pair_tool_results(messages: list[ChatMessage]) -> None:
    """Ollama names a tool result by its tool; templates pair results with call ids: give a
    result the id of the latest unanswered call of that name."""
    open_calls: list[ToolCall] = []
    for message in messages:
        if message.role == "assistant":
            open_calls = list(message.tool_calls)
        elif message.role == "tool" and not message.tool_call_id:
            match = next(
                (c for c in open_calls if not message.name or c.name == message.name), None
            )
            if match is not None:
                message.tool_call_id = match.id
                open_calls.remove(match)


def _tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    for index, tool in enumerate(tools or []):
        function = tool.get("function")
        if tool.get("type", "function") != "function" or not isinstance(function, dict):
            raise ApiError.invalid("a tool must be a function", param=f"tools[{index}]")
        out.append({"type": "function", "function": function})
    return out


def residency_body(kind: str, model: str, done: str) -> dict[str, Any]:
    """The answer to a request with nothing to run: the model was loaded or unloaded."""
    return {"model": model, "created_at": now_iso(), **_message(kind), "done": True,
            "done_reason": done}  # fmt: skip


def _residency_only(kind: str, model: str, empty: bool) -> Callable[[str], dict[str, Any]] | None:
    return (lambda done: residency_body(kind, model, done)) if empty else None


def _scoring(request: ChatRequest | GenerateRequest) -> int | None:
    """Alternatives to score at each answer token (None: no log probabilities)."""
    check_top("top_logprobs", request.top_logprobs)
    return (request.top_logprobs or 0) if request.logprobs else None


def chat_turn(body: bytes, settings: GatewaySettings) -> Turn:
    request = decode_body(body, ChatRequest)
    params = sampling_params(request.options, request.format)
    params.reasoning_budget = _budget(request.think)
    return Turn(
        route="ollama_chat",
        model=request.model,
        stream=request.stream,
        ask=Ask(
            messages=chat_messages(request.messages),
            params=params,
            tools=_tools(request.tools),
            logprobs=_scoring(request),
            **thinking_of(request.think),
        ),
        reply=ollama_reply("chat", bool(request.logprobs)),
        request_prefix="ollama-",
        media_type=NDJSON,
        residency=residency(request.keep_alive),
        residency_only=_residency_only("chat", request.model, not request.messages),
    )


def generate_turn(body: bytes, settings: GatewaySettings) -> Turn:
    request = decode_body(body, GenerateRequest)
    for name in ("template", "images", "context"):
        if getattr(request, name):
            raise _refuse(name, f"{name} on generate")
    params = sampling_params(request.options, request.format)
    params.reasoning_budget = _budget(request.think)
    scoring = _scoring(request)
    if request.suffix:  # fill in the middle: the model's FIM tokens, not its chat template
        ask = Ask(params=params, prompt=request.prompt, suffix=request.suffix, logprobs=scoring)
    elif request.raw:
        ask = Ask(
            params=params, prompt=request.prompt, logprobs=scoring, **thinking_of(request.think)
        )
    else:
        system = [ChatMessage(role="system", content=request.system)] if request.system else []
        messages = [*system, ChatMessage(role="user", content=request.prompt)]
        ask = Ask(
            params=params, messages=messages, logprobs=scoring, **thinking_of(request.think)
        )
    return Turn(
        route="ollama_generate",
        model=request.model,
        stream=request.stream,
        ask=ask,
        reply=ollama_reply("generate", bool(request.logprobs)),
        request_prefix="ollama-",
        media_type=NDJSON,
        residency=residency(request.keep_alive),
        residency_only=_residency_only("generate", request.model, not request.prompt),
    )


# --- responses ----------------------------------------------------------------------------


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _calls(calls: list[ParsedCall], first: int = 0) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "function": {"index": first + i, "name": c.name, "arguments": c.input}}
        for i, c in enumerate(calls)
    ]


def _message(
    kind: str, content: str = "", thinking: str = "", calls: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """What one line (or the whole answer) says: `response` for generate, `message` for chat."""
    if kind == "generate":
        return {"response": content, **({"thinking": thinking} if thinking else {})}
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    if calls:
        message["tool_calls"] = calls
    return {"message": message}


def _counts(answer: Answer, call: CallInfo) -> dict[str, Any]:
    if answer.finished is None:
        return {}
    timings, usage = answer.finished.timings, answer.finished.usage
    return {
        "done": True,
        "done_reason": "length" if answer.finished.stop in CUT_SHORT else "stop",
        "total_duration": _ns(time.perf_counter() - call.started_at),
        "load_duration": _ns(call.trace.load_s),
        "prompt_eval_count": usage.prompt_tokens,
        "prompt_eval_duration": _ns(timings.prefill_s),
        "eval_count": usage.completion_tokens,
        "eval_duration": _ns(timings.decode_s),
    }


class OllamaStream:
    """NDJSON lines: a line per piece of the answer (done: false), then the counts."""

    def __init__(self, call: CallInfo, kind: str, scored: bool = False) -> None:
        self.call = call
        self.kind = kind
        self.scored = scored

    def _line(self, **fields: Any) -> bytes:
        body: dict[str, Any] = {"model": self.call.model, "created_at": now_iso(), **fields}
        return msgspec.json.encode(body) + b"\n"

    def opening(self) -> list[bytes]:
        return []

    def encode(self, event: Event, answer: Answer) -> list[bytes]:
        if isinstance(event, Text):
            scores = {"logprobs": token_entries(event.logprobs)} if self.scored else {}
            return [self._line(**_message(self.kind, content=event.text), **scores, done=False)]
        if isinstance(event, Reasoning):
            return [self._line(**_message(self.kind, thinking=event.text), done=False)]
        if isinstance(event, CallClosed):  # Ollama sends each call whole
            calls = _calls([event.call], len(answer.calls) - 1)
            return [self._line(**_message(self.kind, calls=calls), done=False)]
        if isinstance(event, Finished):
            return [self._line(**_message(self.kind), **_counts(answer, self.call))]
        return []

    def failure(self, error: ApiError, answer: Answer) -> list[bytes]:
        return [msgspec.json.encode(error_body(error)) + b"\n"]


def ollama_body(
    answer: Answer, call: CallInfo, kind: str, scored: bool = False
) -> dict[str, Any]:
    message = _message(kind, answer.text, answer.reasoning, _calls(answer.calls))
    scores = {"logprobs": token_entries(answer.logprobs)} if scored else {}
    return {
        "model": call.model, "created_at": now_iso(), **message, **scores,
        **_counts(answer, call),
    }  # fmt: skip


def ollama_reply(kind: str, scored: bool = False) -> Reply:
    """/api/chat and /api/generate: they differ in where text goes (and generate has no
    calls: they are written back as text). `scored`: each answer token's log probability."""
    return Reply(
        encoder=lambda call: OllamaStream(call, kind, scored),
        body=lambda answer, call: ollama_body(answer, call, kind, scored),
        calls_as_text=kind == "generate",
    )


def error_body(error: ApiError) -> dict[str, Any]:
    return {"error": error.message}


# --- the model list -------------------------------------------------------------------


def _details(view: CatalogueView) -> dict[str, Any]:
    return {
        "format": "gguf", "family": "", "families": [], "parameter_size": "",
        "quantization_level": "", "parent_model": "",
    }  # fmt: skip


def _capabilities(view: CatalogueView) -> list[str]:
    dialect: dict[str, str] = next((m.dialect for m in view.states.values() if m.dialect), {})
    return [
        "completion",
        *(["tools"] if dialect.get("tools") else []),
        *(["thinking"] if dialect.get("reasoning") else []),
    ]


def _listing(name: str, view: CatalogueView) -> dict[str, Any]:
    size = view.entry.footprint_mb * 1024 * 1024
    return {
        "name": name, "model": name, "modified_at": "1970-01-01T00:00:00Z", "size": size,
        "digest": "", "details": _details(view),
    }  # fmt: skip


def tags_body(catalogue: dict[str, CatalogueView], aliases: dict[str, str]) -> dict[str, Any]:
    """Every model any neuron can serve (aliases too), loaded or not."""
    models = [_listing(name, view) for name, view in sorted(catalogue.items())]
    models += [
        _listing(alias, catalogue[target])
        for alias, target in sorted(aliases.items())
        if target in catalogue and not is_pattern(alias)  # a pattern names no one model
    ]
    return {"models": models}


def ps_body(catalogue: dict[str, CatalogueView]) -> dict[str, Any]:
    """The models loaded (ready) somewhere, with where and how much memory."""
    running = []
    for name, view in sorted(catalogue.items()):
        for node, state in sorted(view.states.items()):
            if state.state != "ready":
                continue
            size = (state.footprint_mb or view.entry.footprint_mb) * 1024 * 1024
            running.append(
                {**_listing(name, view), "size": size, "size_vram": size, "node": node,
                 "expires_at": "0001-01-01T00:00:00Z", "context_length": view.entry.n_ctx}
            )  # fmt: skip
    return {"models": running}


class ShowRequest(msgspec.Struct, kw_only=True):
    model: str = ""
    name: str = ""  # older clients
    verbose: bool = False


def show_body(name: str, view: CatalogueView) -> dict[str, Any]:
    dialect: dict[str, str] = next((m.dialect for m in view.states.values() if m.dialect), {})
    return {
        "modelfile": "", "parameters": "", "template": "", "details": _details(view),
        "model_info": {"general.architecture": "", "context_length": view.entry.n_ctx},
        "capabilities": _capabilities(view), "dialect": dialect,
        "modified_at": "1970-01-01T00:00:00Z",
    }  # fmt: skip
