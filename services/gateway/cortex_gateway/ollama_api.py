"""Ollama's API (`/api/chat`, `/api/generate`, `/api/tags`, `/api/ps`, `/api/show`,
`/api/version`), on the same projection core as the other dialects.

Many clients speak only Ollama (Open WebUI, editor plugins, scripts). Streams are NDJSON,
one JSON object per line, the last with `done: true` and Ollama's counts and durations
(nanoseconds). Reasoning goes to `message.thinking` (`thinking` for generate), never into
the content; tool calls arrive whole, with their arguments as an object. Errors are
`{"error": "…"}`. Sampling follows Ollama's documented defaults. As Ollama's own decoder
does, a `null` where a field is optional means its default.

The model list describes each model from its neurons' catalogue entries (what they read of
its GGUF at their start), so a model's details and capabilities do not change when it loads.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
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
from cortex_gateway.gateway_state import LATEST, ModelNotFound, modified_at
from cortex_gateway.keep_alive import residency
from cortex_gateway.logprobs import check_top, token_entries
from cortex_gateway.openai_chat import EFFORT_BUDGETS, EFFORT_LEVELS, decode_body, error_at
from cortex_gateway.projection import Ask, CallInfo, Reply, Turn
from cortex_gateway.sampling_defaults import OLLAMA
from cortex_gateway.tool_calls import ParsedCall
from cortex_wire.messages import CatalogueEntry, ChatMessage, SamplingParams, ToolCall

VERSION = "0.12.0"  # the Ollama API version these routes follow
NDJSON = "application/x-ndjson"
# Options that tune the runtime, not the output: accepted, left to the neuron's settings.
RUNTIME_OPTIONS = frozenset(
    {"num_ctx", "num_batch", "num_gpu", "main_gpu", "num_thread", "use_mmap", "use_mlock",
     "numa", "low_vram", "num_keep", "vocab_only", "f16_kv", "logits_all"}
)  # fmt: skip
# Tokens the neuron's repetition penalties look back over (its llama_backend.PENALTY_WINDOW).
PENALTY_WINDOW = 64
# Standard options cortex cannot honour, and the values at which they change nothing (those
# are accepted; any other value would change the answer, so it is refused).
NEUTRAL = {
    "mirostat": "0 (off)", "mirostat_tau": "any, with mirostat 0",
    "mirostat_eta": "any, with mirostat 0", "typical_p": "1.0", "tfs_z": "1.0",
    "repeat_last_n": f"{PENALTY_WINDOW}, or any without a repetition penalty",
}  # fmt: skip


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
    arguments: dict[str, Any] | str | None = None


class Call(msgspec.Struct, kw_only=True):
    function: Function
    id: str | None = None


class Message(msgspec.Struct, kw_only=True):
    role: str
    content: str | None = None
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[Call] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class ChatRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: list[Message] | None = None
    tools: list[dict[str, Any]] | None = None
    think: bool | str | None = None
    format: str | dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    stream: bool | None = None  # None: stream (Ollama's default)
    keep_alive: str | float | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None


class GenerateRequest(msgspec.Struct, kw_only=True):
    model: str
    prompt: str | None = None
    system: str | None = None
    suffix: str | None = None
    template: str | None = None
    raw: bool | None = None
    images: list[str] | None = None
    think: bool | str | None = None
    format: str | dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    stream: bool | None = None
    keep_alive: str | float | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    context: list[int] | None = None


# --- requests -----------------------------------------------------------------------------


def required_model(name: str | None) -> str:
    """The model a request names; one that names none is Ollama's 400, not a model "" that
    is not found."""
    if not name:
        raise ApiError.invalid("model is required", param="model")
    return name


def _refuse(param: str, what: str) -> ApiError:
    return ApiError.invalid(f"{param}: {what} is not supported", param=param)


def _penalised(raw: dict[str, Any]) -> bool:
    """Whether any repetition penalty is on (Ollama's default repeat_penalty is)."""
    repeat = raw.get("repeat_penalty")
    return (OLLAMA.repeat_penalty if repeat is None else repeat) != 1.0 or bool(
        raw.get("presence_penalty") or raw.get("frequency_penalty")
    )


def _changes_nothing(name: str, value: Any, raw: dict[str, Any]) -> bool:
    """Whether a standard option cortex has no sampler for is at a value that leaves the
    answer as it is."""
    if isinstance(value, bool) and name != "penalize_newline":
        return False
    if name == "mirostat":
        return value == 0
    if name in ("mirostat_tau", "mirostat_eta"):  # only read by mirostat
        return not raw.get("mirostat")
    if name in ("typical_p", "tfs_z"):
        return value == 1
    if name == "repeat_last_n":
        return value == PENALTY_WINDOW or not _penalised(raw)
    # llama.cpp (and Ollama itself) no longer has the switch: newlines are penalised like
    # any other token whatever it says.
    return name == "penalize_newline" and isinstance(value, bool)


def sampling_params(
    options: dict[str, Any] | None, fmt: str | dict[str, Any] | None
) -> SamplingParams:
    raw = dict(options or {})
    for name in sorted(raw):
        value = raw[name]
        if name in RUNTIME_OPTIONS or value is None:
            raw.pop(name)
        elif name in Options.__struct_fields__:
            continue
        elif _changes_nothing(name, value, raw):
            raw.pop(name)
        elif name in NEUTRAL:
            raise _refuse(
                f"options.{name}", f"{name} {value!r} (cortex honours only {NEUTRAL[name]})"
            )
        else:
            raise _refuse(f"options.{name}", "this sampling option")
    try:
        opts = msgspec.convert(raw, Options)
    except msgspec.ValidationError as error:
        what, where = error_at(error)
        field = "options" + where
        raise ApiError.invalid(f"{field}: {what}", param=field) from None
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
    """The reasoning budget: an effort's, or none at all with `think: false` (a model that
    reasons anyway has its reasoning closed at once, as with OpenAI's effort "none")."""
    if think is False:
        return 0
    return EFFORT_BUDGETS.get(think) if isinstance(think, str) else None


def _arguments(arguments: dict[str, Any] | str | None) -> str:
    if arguments is None:
        return "{}"
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
                content=message.content or "",
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
    required_model(request.model)
    params = sampling_params(request.options, request.format)
    params.reasoning_budget = _budget(request.think)
    messages = chat_messages(request.messages or [])
    return Turn(
        route="ollama_chat",
        model=request.model,
        stream=request.stream is not False,
        ask=Ask(
            messages=messages,
            params=params,
            tools=_tools(request.tools),
            logprobs=_scoring(request),
            # A last assistant message is the start of the reply (a prefill): the prompt
            # ends inside it and the answer is its continuation, as in Ollama.
            continue_final=bool(messages) and messages[-1].role == "assistant",
            **thinking_of(request.think),
        ),
        reply=ollama_reply("chat", bool(request.logprobs)),
        request_prefix="ollama-",
        media_type=NDJSON,
        residency=residency(request.keep_alive),
        residency_only=_residency_only("chat", request.model, not messages),
    )


def generate_turn(body: bytes, settings: GatewaySettings) -> Turn:
    request = decode_body(body, GenerateRequest)
    required_model(request.model)
    for name in ("template", "images", "context"):
        if getattr(request, name):
            raise _refuse(name, f"{name} on generate")
    params = sampling_params(request.options, request.format)
    params.reasoning_budget = _budget(request.think)
    scoring = _scoring(request)
    prompt = request.prompt or ""
    if request.suffix:  # fill in the middle: the model's FIM tokens, not its chat template
        ask = Ask(params=params, prompt=prompt, suffix=request.suffix, logprobs=scoring)
    elif request.raw:
        ask = Ask(params=params, prompt=prompt, logprobs=scoring, **thinking_of(request.think))
    else:
        system = [ChatMessage(role="system", content=request.system)] if request.system else []
        messages = [*system, ChatMessage(role="user", content=prompt)]
        ask = Ask(params=params, messages=messages, logprobs=scoring, **thinking_of(request.think))
    return Turn(
        route="ollama_generate",
        model=request.model,
        stream=request.stream is not False,
        ask=ask,
        reply=ollama_reply("generate", bool(request.logprobs)),
        request_prefix="ollama-",
        media_type=NDJSON,
        residency=residency(request.keep_alive),
        residency_only=_residency_only("generate", request.model, not prompt),
    )


def check_capabilities(turn: Turn, capabilities: Sequence[str]) -> None:
    """Refuse what the model cannot do, in Ollama's words (clients read them to fall back:
    retry without tools, turn thinking off). Capabilities not known (an empty list: an
    older neuron, a file it could not read) refuse nothing."""
    if not capabilities:
        return
    asked = (
        ("tools", bool(turn.ask.tools), "tools"),
        ("thinking", bool(turn.ask.thinking), "think"),
        ("insert", turn.ask.suffix is not None, "suffix"),
    )
    for capability, wanted, param in asked:
        if wanted and capability not in capabilities:
            raise ApiError.invalid(f'"{turn.model}" does not support {capability}', param=param)


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


def ollama_body(answer: Answer, call: CallInfo, kind: str, scored: bool = False) -> dict[str, Any]:
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
        calls_whole=True,
    )


def error_body(error: ApiError) -> dict[str, Any]:
    if isinstance(error, ModelNotFound):  # Ollama's words: clients look for "not found"
        return {"error": f"model '{error.model}' not found (no neuron's catalogue has it)"}
    return {"error": error.message}


class PullRequest(msgspec.Struct, kw_only=True):
    model: str | None = None
    name: str | None = None  # older clients
    stream: bool = True
    insecure: bool | None = None


def pull_body(entry: CatalogueEntry, stream: bool) -> bytes:
    """What Ollama answers a pull of a model it already has, for one a neuron's catalogue
    holds: nothing to download. Clients pull before they chat to make sure the model is
    there; the status lines (one JSON object, or NDJSON when streamed) say it is."""
    if not stream:
        return msgspec.json.encode({"status": "success"})
    digest, size = digest_of(entry), entry.file_size
    lines = [{"status": "pulling manifest"},
             {"status": f"pulling {digest[:12]}", "digest": f"sha256:{digest}", "total": size,
              "completed": size},
             {"status": "verifying sha256 digest"}, {"status": "writing manifest"},
             {"status": "success"}]  # fmt: skip
    return b"".join(msgspec.json.encode(line) + b"\n" for line in lines)


# What Ollama manages on its own disk, cortex leaves to its operators.
NOT_HERE = {
    "push": "pushing a model", "create": "creating a model",
    "copy": "copying a model", "delete": "deleting a model", "blobs": "uploading a blob",
}  # fmt: skip


def not_supported(path: str) -> ApiError:
    """/api/pull, /api/create, …: a 501 saying where cortex's models come from instead."""
    operation = path.removeprefix("/api/").split("/")[0]
    what = NOT_HERE.get(operation, path)
    return ApiError(
        501,
        f"{what} is not supported here: cortex serves the models of its neurons' catalogues "
        "(models.toml); a request loads the one it names, which stays loaded until the "
        "scheduler needs its room; `cortex load MODEL` loads one ahead, and `cortex pin MODEL` "
        "(or keep_alive -1 with an admin key) keeps it loaded",
        type="invalid_request_error",
    )


# --- the model list -------------------------------------------------------------------


def digest_of(entry: CatalogueEntry) -> str:
    """64 hex digits naming the model: the neuron's digest of its GGUF (CatalogueEntry.digest:
    the sha256 of the file's size, header and first and last MiB of weights — not Ollama's
    sha256 of the whole file). An entry without one (a file its neuron could not read, an
    older neuron) gets the sha256 of its id, so clients that cut it to 12 still can."""
    return entry.digest or hashlib.sha256(f"cortex-model:{entry.id}".encode()).hexdigest()


def parameter_size(count: int) -> str:
    """A parameter count as Ollama writes it ("134.52M", "8.0B"); "" when unknown."""
    for unit, scale, places in (("B", 1e9, 1), ("M", 1e6, 2), ("K", 1e3, 0)):
        if count >= scale:
            number = count / scale
            return f"{number:.{0 if number == int(number) else places}f}{unit}"
    return str(count) if count else ""


def _details(view: CatalogueView) -> dict[str, Any]:
    entry = view.entry
    arch = entry.architecture
    return {
        "parent_model": "", "format": "gguf", "family": arch, "families": [arch] if arch else [],
        "parameter_size": parameter_size(entry.parameter_count),
        "quantization_level": entry.quantization,
    }  # fmt: skip


def _loaded_dialect(view: CatalogueView) -> dict[str, str]:
    """The dialect as a loaded replica reports it (for entries of older neurons)."""
    return next((m.dialect for m in view.states.values() if m.dialect), {})


def capabilities_of(view: CatalogueView) -> list[str]:
    """What the model can do, in Ollama's words, from its catalogue entry (the same loaded
    or not); an entry that does not say (an older neuron's) is read as before, from a
    loaded replica's dialect."""
    entry = view.entry
    if entry.capabilities:
        return list(entry.capabilities)
    if entry.embedding:
        return ["embedding"]
    dialect = _loaded_dialect(view)
    return [
        "completion",
        *(["tools"] if dialect.get("tools") else []),
        *(["thinking"] if dialect.get("reasoning") else []),
    ]


def listed_name(name: str, names: Collection[str]) -> str:
    """The name a model is listed by: `x:latest` for an untagged `x`, as Ollama lists it
    (clients look for the tagged name), unless `x:latest` is itself an id or alias: then
    `x`, the only name that reaches it."""
    tagged = ":" in name.rsplit("/", 1)[-1]
    return name if tagged or name + LATEST in names else name + LATEST


def _listing(name: str, view: CatalogueView) -> dict[str, Any]:
    """A model as /api/tags lists it: `size` is its file's on disk (its memory footprint
    for an entry that does not say, an older neuron's)."""
    entry = view.entry
    size = entry.file_size or entry.footprint_mb * 1024 * 1024
    return {
        "name": name, "model": name, "modified_at": modified_at(entry), "size": size,
        "digest": digest_of(entry), "details": _details(view),
    }  # fmt: skip


def _names(catalogue: dict[str, CatalogueView], aliases: dict[str, str]) -> dict[str, str]:
    """Every name a model is listed by (aliases too, but not patterns), to the model."""
    named = {name: name for name in catalogue}
    for alias, target in aliases.items():
        if target in catalogue and not is_pattern(alias) and alias not in named:
            named[alias] = target
    return named


def tags_body(catalogue: dict[str, CatalogueView], aliases: dict[str, str]) -> dict[str, Any]:
    """Every model any neuron can serve, then the aliases, loaded or not."""
    named = _names(catalogue, aliases)
    order = sorted(named, key=lambda name: (name not in catalogue, name))
    return {"models": [_listing(listed_name(n, named), catalogue[named[n]]) for n in order]}


def forever(now: datetime) -> str:
    """When a loaded model expires: cortex has no idle timers (a model stays loaded until the
    scheduler needs its room), so as far as Ollama's clients can tell, never — the far-future
    time Ollama itself sends for keep_alive -1 (now plus Go's longest duration, ~292 years;
    clients show "Forever")."""
    return (now + timedelta(microseconds=(2**63 - 1) // 1000)).strftime("%Y-%m-%dT%H:%M:%SZ")


def ps_body(
    catalogue: dict[str, CatalogueView], aliases: dict[str, str], on_gpu: Collection[str]
) -> dict[str, Any]:
    """The models loaded (ready) somewhere, with where and how much memory: all of it in
    VRAM on a neuron with GPUs (`on_gpu`), none on one that serves on its CPU."""
    running = []
    expires = forever(datetime.now(UTC))
    named = _names(catalogue, aliases)
    for name, view in sorted(catalogue.items()):
        for node, state in sorted(view.states.items()):
            if state.state != "ready":
                continue
            size = (state.footprint_mb or view.entry.footprint_mb) * 1024 * 1024
            running.append(
                {**_listing(listed_name(name, named), view), "size": size,
                 "size_vram": size if node in on_gpu else 0, "node": node,
                 "expires_at": expires, "context_length": view.entry.n_ctx}
            )  # fmt: skip
    return {"models": running}


class ShowRequest(msgspec.Struct, kw_only=True):
    model: str | None = None
    name: str | None = None  # older clients
    verbose: bool | None = None


def model_info(entry: CatalogueEntry) -> dict[str, Any]:
    """Ollama's model_info keys, from the GGUF header as the neuron read it. Every key is
    there even when not known (clients read them without looking first). The context
    lengths are the context cortex serves, when that is less than the model was trained on:
    clients (Zed, Copilot) size their prompts from the prefixed key, and where Ollama would
    cut a longer prompt short, cortex refuses it."""
    arch = entry.architecture
    return {
        "general.architecture": arch,
        "general.parameter_count": entry.parameter_count,
        f"{arch}.context_length": min(entry.context_length or entry.n_ctx, entry.n_ctx),
        f"{arch}.embedding_length": entry.embedding_length,
        "context_length": entry.n_ctx,
    }


def show_body(name: str, view: CatalogueView) -> dict[str, Any]:
    return {
        "modelfile": "", "parameters": "", "template": "", "details": _details(view),
        "model_info": model_info(view.entry), "capabilities": capabilities_of(view),
        "dialect": view.entry.dialect or _loaded_dialect(view),
        "modified_at": modified_at(view.entry),
    }  # fmt: skip
