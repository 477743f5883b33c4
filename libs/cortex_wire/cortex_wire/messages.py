"""Every message that crosses the bus.

Rules for evolving them (rolling upgrades): add fields with defaults; never rename or
retype a field; decoders ignore unknown fields (msgspec's default).
"""

from __future__ import annotations

from typing import Literal

import msgspec

ModelState = Literal["loading", "ready", "unloading", "failed"]
FinishReason = Literal["stop", "length", "cancelled"]


class Struct(msgspec.Struct, kw_only=True, omit_defaults=False):
    """Base for wire messages: keyword-only so fields can be added anywhere later."""


# ---------------------------------------------------------------------------------------
# Errors


class WireError(Struct):
    """An error that travels on the bus; `code` is stable and machine-readable, and the
    outcome table (`outcomes.py`) says what it means: status, types, retry."""

    code: str
    message: str
    retryable: bool = False  # unused: kept so older peers still decode (the table decides)


# ---------------------------------------------------------------------------------------
# Neuron heartbeat (cortex.neuron.<node>.heartbeat)


class Device(Struct):
    index: int
    name: str
    kind: Literal["cuda", "cpu"]
    total_mb: int
    free_mb: int


class CatalogueEntry(Struct):
    """A model a neuron can serve, with what placement needs to know about it."""

    id: str
    n_ctx: int
    footprint_mb: int
    min_devices: int = 1
    min_device_vram_mb: int = 0
    pinned_on: list[str] = msgspec.field(default_factory=list)
    residency_priority: int = 0
    parallel: int = 1
    # An embedding model: it answers embedding requests, never chat.
    embedding: bool = False
    # What the neuron read of the model's GGUF at its start (header and vocabulary, not the
    # weights), the same whether it is loaded or not; "", 0 and [] where it could not.
    # 64 hex digits naming the file's contents (the neuron's catalogue_facts.file_digest).
    digest: str = ""
    architecture: str = ""  # general.architecture
    parameter_count: int = 0
    context_length: int = 0  # what the model was trained for; n_ctx is what is served
    embedding_length: int = 0
    quantization: str = ""  # how most weights are stored: "Q4_K_M", "F16", …
    # In Ollama's words: completion, tools, thinking, insert; embedding for embedding models.
    capabilities: list[str] = msgspec.field(default_factory=list)
    # The dialect the load will read (LoadedModel.dialect), and its inline reasoning markers.
    dialect: dict[str, str] = msgspec.field(default_factory=dict)
    reasoning_markers: list[str] = msgspec.field(default_factory=list)
    # The GGUF on disk: its size in bytes and when it last changed (Unix seconds).
    file_size: int = 0
    file_mtime: float = 0.0
    # The most requests it takes at once on this neuron, running and waiting (0: unknown).
    max_requests: int = 0


class LoadedModel(Struct):
    id: str
    state: ModelState
    footprint_mb: int = 0
    slots: int = 1
    busy: int = 0
    queued: int = 0
    tokens_per_s: float = 0.0
    last_used_at: float = 0.0
    error: str = ""
    # 0.0-1.0 while loading (from llama.cpp's own progress reports).
    load_progress: float = 0.0
    # [open, close] marker texts found in the model's vocabulary; empty when it has none.
    reasoning_markers: list[str] = msgspec.field(default_factory=list)
    tool_call_markers: list[str] = msgspec.field(default_factory=list)
    # What the neuron read of the model's dialect (reasoning, tools, thinking_switch, …).
    dialect: dict[str, str] = msgspec.field(default_factory=dict)
    # Digests of the conversation prefixes its slots hold (cortex_wire.prefixes), for
    # routing a conversation's next turn to the cache that has its start.
    prefixes: list[str] = msgspec.field(default_factory=list)


class Heartbeat(Struct):
    node: str
    instance: str
    seq: int
    sent_at: float
    interval_s: float
    devices: list[Device]
    memory_budget_mb: int
    models: list[LoadedModel] = msgspec.field(default_factory=list)
    catalogue: list[CatalogueEntry] = msgspec.field(default_factory=list)
    aliases: dict[str, str] = msgspec.field(default_factory=dict)
    # Load + unload operations since the engine last started (for defrag_after_cycles).
    cycles: int = 0


class GatewayHeartbeat(Struct):
    gateway: str
    sent_at: float
    interval_s: float
    # Requests it is following right now (for a reader of the bus).
    streams: int = 0


# ---------------------------------------------------------------------------------------
# Inference (cortex.neuron.<node>.infer, frames on cortex.stream.<request_id>)


class ToolCall(Struct):
    """A call the assistant made, in history sent back to the model."""

    id: str
    name: str
    # JSON text of the arguments object.
    arguments: str = "{}"


class ChatMessage(Struct):
    role: str
    content: str
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)
    # role "tool": which call this is the result of.
    tool_call_id: str = ""
    name: str = ""
    # role "assistant": the reasoning it wrote (the model's template decides if it is kept).
    reasoning: str = ""


class SamplingParams(Struct):
    max_tokens: int | None = None
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    seed: int | None = None
    stop: list[str] = msgspec.field(default_factory=list)
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    # Reasoning tokens allowed before the neuron closes the reasoning itself.
    reasoning_budget: int | None = None
    # Constrain the answer to this JSON schema (llama.cpp grammar).
    json_schema: dict[str, object] | None = None
    # Added to these tokens' logits before sampling (OpenAI's logit_bias: token id → bias).
    logit_bias: dict[int, float] = msgspec.field(default_factory=dict)


class InferRequest(Struct):
    request_id: str
    model: str
    stream_subject: str
    messages: list[ChatMessage] | None = None
    prompt: str | None = None
    params: SamplingParams = msgspec.field(default_factory=SamplingParams)
    chat_template_kwargs: dict[str, object] = msgspec.field(default_factory=dict)
    # Tool definitions for the chat template (OpenAI function format).
    tools: list[dict[str, object]] = msgspec.field(default_factory=list)
    # The gateway following the stream: if its heartbeats stop, the neuron cancels.
    gateway: str = ""
    # Thinking asked on (True) or off (False); None: the model's default. The neuron sets
    # whichever template variables the model's dialect has for it.
    thinking: bool | None = None
    # "low", "medium", "high" (or "" for the default): the dialect's effort variable.
    reasoning_effort: str = ""
    # Stream tool calls as their arguments grow (the client streams). Otherwise each call
    # arrives whole, and a tool section that does not parse comes back as text.
    stream_calls: bool = False
    # The last message is the start of the assistant's reply (Anthropic's prefill): the
    # prompt ends inside it, and the answer continues it.
    continue_final: bool = False
    # Fill in the middle: `prompt` is the text before the gap, this the text after it; the
    # neuron writes them with the model's own FIM tokens and the answer is the middle.
    suffix: str | None = None
    # The prompt as token ids, used exactly as given (no BOS added, no template): a client
    # that tokenized it itself scores or continues those very tokens.
    prompt_tokens: list[int] | None = None
    # Report each generated token's log probability and this many of the most likely
    # alternatives (None: no log probabilities at all; computed only when asked).
    logprobs: int | None = None
    # Also report the log probability of every prompt token after the first (the prompt
    # is then prefilled whole, without reusing a cache, whose logits are gone).
    prompt_logprobs: bool = False
    # A forced tool choice: the reply is one call, written as the JSON object `{"name":
    # …, "arguments": {…}}` that `params.json_schema` constrains it to (the gateway builds
    # that schema from `tools`); the neuron reads the whole output as that call.
    require_call: bool = False
    # At most one tool call (OpenAI's parallel_tool_calls false, Anthropic's
    # disable_parallel_tool_use): the generation ends once its first call is whole.
    single_call: bool = False
    # The tools the model may call, of `tools` (OpenAI's allowed_tools; None: all of them).
    # The template is given all of `tools` still, so a prompt's prefix stays the same.
    callable: list[str] | None = None


class InferReply(Struct):
    """The neuron's immediate answer to an InferRequest: accepted, or why not."""

    accepted: bool
    error: WireError | None = None
    # The model's [open, close] reasoning markers (for clients that want them inline).
    reasoning_markers: list[str] = msgspec.field(default_factory=list)
    tool_call_markers: list[str] = msgspec.field(default_factory=list)
    # The prompt's length in tokens, as the neuron rendered and measured it before
    # accepting (0: a neuron that does not say), for APIs that report it before any token.
    prompt_tokens: int = 0


class EmbedRequest(Struct):
    """Gateway → neuron (cortex.neuron.<node>.embed): vectors for each input text."""

    request_id: str
    model: str
    input: list[str]
    # Cut an input longer than the model's context at its end (Ollama's default) instead
    # of refusing it with context_length_exceeded (OpenAI's way).
    truncate: bool = False


class EmbedReply(Struct):
    """One L2-normalised vector per input, in order, and the tokens the inputs took."""

    vectors: list[list[float]] = msgspec.field(default_factory=list)
    tokens: int = 0
    error: WireError | None = None


class TokenCount(Struct):
    """Reply to an InferRequest sent to cortex.neuron.<node>.tokenize."""

    tokens: int = 0
    error: WireError | None = None


class VocabRequest(Struct):
    """Gateway → neuron (cortex.neuron.<node>.vocab): a loaded model's own tokenizer, for
    clients that tokenize through the server: `text` to token ids, or `tokens` back to
    text (neither: only what the tokenizer is)."""

    request_id: str
    model: str
    text: str | None = None
    tokens: list[int] | None = None
    # Add the model's BOS token (when it wants one), as a prompt would start.
    add_special: bool = False


class VocabReply(Struct):
    tokens: list[int] = msgspec.field(default_factory=list)
    text: str = ""
    bos: str = ""  # the special tokens' own texts ("" where the model has none)
    eos: str = ""
    chat_template: str = ""
    n_ctx: int = 0
    n_vocab: int = 0
    error: WireError | None = None


class StoredResponse(Struct):
    """A Responses API answer kept in the responses bucket: what GET /v1/responses/{id}
    returns, and the conversation a next turn (previous_response_id) continues."""

    id: str
    model: str
    body: dict[str, object]  # the response, as it was returned
    # Every message so far (instructions aside: a next turn brings its own), this
    # response's output last.
    conversation: list[ChatMessage] = msgspec.field(default_factory=list)
    # This request's own input, as Responses input items (GET …/input_items).
    input_items: list[dict[str, object]] = msgspec.field(default_factory=list)


class Cancel(Struct):
    request_id: str
    reason: str = "client went away"


class Usage(Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    # Part of completion_tokens: reasoning, marker tokens included.
    reasoning_tokens: int = 0
    # Complete tool-call blocks generated.
    tool_calls: int = 0


# The most alternatives a request may ask for at each position (OpenAI's own limit).
MAX_TOP_LOGPROBS = 20


class TopLogprob(Struct):
    token: str
    logprob: float
    bytes: list[int] = msgspec.field(default_factory=list)


class TokenLogprob(Struct):
    """One token and its log probability under the model's own distribution (before any
    sampler stage: penalties, biases, temperature); `logprob` is None for a prompt's first
    token, which nothing predicts. `top`: the most likely tokens at that position."""

    token: str
    logprob: float | None
    bytes: list[int] = msgspec.field(default_factory=list)
    top: list[TopLogprob] = msgspec.field(default_factory=list)


class Delta(Struct, tag="delta", tag_field="type"):
    """Answer text (the model's visible output)."""

    seq: int
    text: str = ""
    tokens: int = 0
    # With InferRequest.logprobs: the answer tokens this text came from, in order.
    logprobs: list[TokenLogprob] = msgspec.field(default_factory=list)
    # With InferRequest.prompt_logprobs: the prompt's tokens (sent once, before any text).
    prompt_logprobs: list[TokenLogprob] = msgspec.field(default_factory=list)


class ReasoningDelta(Struct, tag="reasoning", tag_field="type"):
    """Reasoning text (between the model's reasoning markers; markers never included)."""

    seq: int
    text: str = ""
    tokens: int = 0


class KeepAlive(Struct, tag="keepalive", tag_field="type"):
    seq: int
    phase: Literal["queued", "prefill", "decode"] = "queued"


class Timings(Struct):
    """Where a request's time went on the neuron, in seconds."""

    queue_s: float = 0.0  # waiting for the engine
    prefill_s: float = 0.0  # from the engine taking it to the first generated token
    decode_s: float = 0.0  # from the first token to the last


class Done(Struct, tag="done", tag_field="type"):
    seq: int
    finish_reason: FinishReason
    usage: Usage
    # The stop sequence that ended the answer, if one did.
    stop_sequence: str = ""
    timings: Timings = msgspec.field(default_factory=Timings)
    # finish_reason "length" because the context was full, not because max_tokens was hit.
    context_full: bool = False
    # With InferRequest.logprobs: the end-of-generation token the model sampled (it is
    # not text), for APIs that list it.
    end_logprob: TokenLogprob | None = None


class Failed(Struct, tag="error", tag_field="type"):
    seq: int
    error: WireError


class ToolCallBlock(Struct, tag="tool_call", tag_field="type"):
    """The text between the model's tool-call markers (markers excluded), whole.

    `complete` is False when generation ended before the close marker."""

    seq: int
    text: str
    tokens: int = 0
    complete: bool = True


class ToolCallFrame(Struct, tag="tool_call_parsed", tag_field="type"):
    """A tool call, parsed on the neuron by the model's dialect: `index` counts the
    request's calls from 0; `arguments` is the JSON text of an object.

    With `InferRequest.stream_calls`, a call may come in several frames of one index as
    its arguments grow: the first names it, each adds `arguments` text, and the one with
    `complete` ends it. Otherwise each frame is a whole call."""

    seq: int
    index: int
    name: str
    arguments: str = "{}"
    tokens: int = 0
    complete: bool = True


Frame = Delta | ReasoningDelta | ToolCallBlock | ToolCallFrame | KeepAlive | Done | Failed


# ---------------------------------------------------------------------------------------
# Scheduler (cortex.sched.ensure) and neuron control (cortex.neuron.<node>.control)


class EnsureModel(Struct):
    """Gateway/CLI → scheduler: make this model ready (on `node` if given).

    The scheduler answers within a few seconds: ready (`ok`), failed (`error`), or still
    `loading` — then the caller asks again. Asking again is how a waiting caller survives a
    scheduler failover."""

    model: str
    request_id: str = ""
    node: str = ""


class EnsureReply(Struct):
    ok: bool
    node: str = ""
    error: WireError | None = None
    loading: bool = False
    model: str = ""  # the model id the request's name resolved to (an alias names one)


class ModelRef(Struct):
    """CLI → scheduler (unload, pin, unpin, explain): a model, optionally on one node."""

    model: str
    node: str = ""


class Pin(Struct):
    """A run-time pin (kept in JetStream KV): keep `model` loaded on `node` ("" = anywhere)."""

    model: str
    node: str = ""
    at: float = 0.0


class SchedulerReply(Struct):
    ok: bool
    error: WireError | None = None
    detail: str = ""


class EvictionView(Struct):
    node: str
    model: str
    reason: str


class CandidateView(Struct):
    node: str
    fits_now: bool
    free_mb: int
    evictions: list[EvictionView] = msgspec.field(default_factory=list)


class Explanation(Struct):
    """Where a model would load and what would be evicted, without doing it."""

    model: str
    node: str | None
    reason: str
    already_on: list[str] = msgspec.field(default_factory=list)
    evictions: list[EvictionView] = msgspec.field(default_factory=list)
    candidates: list[CandidateView] = msgspec.field(default_factory=list)
    rejected: dict[str, str] = msgspec.field(default_factory=dict)
    # The model cannot be explained at all (no live neuron serves it): why.
    error: WireError | None = None


class FleetStatus(Struct):
    """`cortex status --json`: the fleet as the active scheduler sees it."""

    leader: str
    strategy: str
    neurons: list[Heartbeat]
    pins: list[Pin]


class SchedulerEvent(Struct):
    """cortex.event.scheduler.<kind>: every scheduler decision, with its reason."""

    kind: str
    at: float
    model: str = ""
    node: str = ""
    reason: str = ""


class LoadModel(Struct, tag="load", tag_field="op"):
    model: str


class UnloadModel(Struct, tag="unload", tag_field="op"):
    model: str
    # Refuse (code "busy") rather than cut off requests in flight or waiting.
    only_if_idle: bool = True


class RestartEngine(Struct, tag="restart", tag_field="op"):
    """Unload every model (defragmenting device memory) once all are idle."""


ControlCommand = LoadModel | UnloadModel | RestartEngine


class ControlReply(Struct):
    ok: bool
    error: WireError | None = None
    # RestartEngine: the models that were unloaded.
    models: list[str] = msgspec.field(default_factory=list)


class RequestRecord(Struct):
    """cortex.metrics.request: one finished request, as a gateway saw it (any replica's
    numbers can be seen on the bus)."""

    request_id: str
    gateway: str
    model: str
    node: str
    route: str
    outcome: str
    at: float
    duration_s: float
    ttft_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cold_start: bool = False
    load_s: float = 0.0
    timings: Timings = msgspec.field(default_factory=Timings)


class ModelEvent(Struct):
    """cortex.event.model.<node>.<model>: a model changed state on a neuron."""

    node: str
    model: str
    state: ModelState | Literal["unloaded"]
    at: float
    detail: str = ""
