"""The llama.cpp backend, on llama-cpp-python's low-level API.

One context holds `parallel` sequences, each with its own KV cells (`n_ctx` tokens each, not
unified: a step's attention then reads only each sequence's own cells, and a prefix another
slot computed is copied over rather than shared in place), and every step decodes all of
them in one `llama_decode`. Each request samples through its own sampler chain. Everything
here runs on the engine thread.
"""

from __future__ import annotations

import ctypes
import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import llama_cpp
import llama_cpp.llama_cpp as C
import numpy as np
import numpy.typing as npt
import structlog

from cortex_core.config import ModelProfile
from cortex_neuron.backend import Row
from cortex_neuron.errors import EngineError, check_vocabulary
from cortex_neuron.gguf_header import GGUFError, read_metadata
from cortex_neuron.logprobs import Scores, scores_at
from cortex_neuron.pieces import TokenPieces, token_piece
from cortex_neuron.schema_patterns import PatternError, json_safe_patterns
from cortex_wire.messages import SamplingParams
from cortex_wire.outcomes import Code

log = structlog.get_logger("llama.cpp")
# ggml log levels (3 warn, 4 error) worth an operator's attention; info describes every load.
_LOG_LEVELS = {3: "warning", 4: "error"}


@C.llama_log_callback  # type: ignore[misc]
def _on_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    method = _LOG_LEVELS.get(level)
    line = text.decode(errors="replace").strip() if method else ""
    if line:
        getattr(log, method)("llama_cpp_log", message=line)  # type: ignore[arg-type]


C.llama_log_set(_on_log, ctypes.c_void_p(0))
# Tokens the repetition penalties look back over (llama-cpp-python's default).
PENALTY_WINDOW = 64

_backend_ready = False


@C.llama_progress_callback  # type: ignore[misc]
def _on_progress(progress: float, user_data: ctypes.c_void_p) -> bool:
    report = _reporters.get(int(user_data or 0))  # type: ignore[call-overload]
    if report is None:
        return True
    try:
        return bool(report(float(progress)))
    except Exception:  # a reporting problem must never abort a load
        return True


# Progress reporters by the id passed to llama.cpp as the callback's user data.
_reporters: dict[int, Callable[[float], bool]] = {}


class LlamaSampler:
    def __init__(self, ctx: Any, chain: Any) -> None:
        self._ctx = ctx
        self._chain = chain

    def sample(self, output: int) -> int:
        return int(C.llama_sampler_sample(self._chain, self._ctx, output))

    def close(self) -> None:
        if self._chain is not None:
            C.llama_sampler_free(self._chain)
            self._chain = None


class GreedySampler:
    """The most likely token, read straight off the logits: what llama.cpp's chain of a
    neutral penalty sampler and its greedy one picks (the first of equal maxima), without
    the chain's copy of the whole vocabulary into a candidate array — 142 µs a token here
    against 30, paid between decode steps while the cores wait."""

    def __init__(self, ctx: Any, n_vocab: int) -> None:
        self._ctx = ctx
        self._n_vocab = n_vocab

    def sample(self, output: int) -> int:
        return int(logits_at(self._ctx, output, self._n_vocab).argmax())

    def close(self) -> None:
        pass


def logits_at(ctx: Any, index: int, n_vocab: int) -> npt.NDArray[np.float32]:
    """The logits at batch index `index` of the last decode, as a view (no copy)."""
    return np.ctypeslib.as_array(C.llama_get_logits_ith(ctx, index), shape=(n_vocab,))


def plain_greedy(params: SamplingParams) -> bool:
    """Whether sampling is the bare argmax: greedy, with nothing that reshapes the logits
    or constrains the choice."""
    return (
        params.temperature <= 0
        and not params.logit_bias
        and params.json_schema is None
        and params.repeat_penalty == 1.0
        and params.presence_penalty == 0.0
        and params.frequency_penalty == 0.0
    )


def load_model(profile: ModelProfile, on_progress: Callable[[float], bool] | None = None) -> Any:
    """llama.cpp's backend (initialised once per process), then the profile's GGUF; an
    EngineError says why it cannot load."""
    global _backend_ready
    if not _backend_ready:
        C.llama_backend_init()
        _backend_ready = True
    path = Path(profile.path)
    if not path.is_file():
        raise EngineError(Code.LOAD_FAILED, f"model file not found: {path}")
    return LlamaBackend._load_model(path, profile, on_progress)


class LlamaBackend:
    has_logits = True

    def __init__(
        self,
        profile: ModelProfile,
        *,
        n_threads: int,
        on_progress: Callable[[float], bool] | None = None,
    ) -> None:
        path = Path(profile.path)
        self._model = load_model(profile, on_progress)
        self._vocab = C.llama_model_get_vocab(self._model)
        self.parallel = max(1, profile.parallel)
        params = C.llama_context_default_params()
        params.n_ctx = profile.n_ctx * self.parallel
        params.n_batch = params.n_ubatch = profile.n_batch
        params.n_seq_max = self.parallel
        params.kv_unified = self.unified = profile.kv_unified
        params.n_threads = params.n_threads_batch = n_threads
        params.flash_attn_type = flash_attention(profile, bool(C.llama_supports_gpu_offload()))
        plain = params.flash_attn_type == C.LLAMA_FLASH_ATTN_TYPE_DISABLED
        if plain and profile.flash_attn is None:
            log.info("flash_attn_off", model=profile.id, reason="the model runs on the CPU, "
                     "where llama.cpp's flash attention slows every step under 64 tokens; "
                     "flash_attn = true turns it on")  # fmt: skip
        params.no_perf = True
        self._ctx = C.llama_init_from_model(self._model, params)
        if not self._ctx:
            C.llama_model_free(self._model)
            raise EngineError(
                Code.LOAD_FAILED,
                f"llama.cpp could not create a context of {profile.n_ctx} tokens for each of "
                f"{self.parallel} slots for {path}",
            )
        self._memory = C.llama_get_memory(self._ctx)
        # llama.cpp rounds the context up (to 256); the profile's n_ctx is the promise.
        self.n_ctx = min(profile.n_ctx, int(C.llama_n_ctx_seq(self._ctx)))
        self.n_batch = int(C.llama_n_batch(self._ctx))
        self._batch = C.llama_batch_init(self.n_batch, 0, 1)
        template = C.llama_model_chat_template(self._model, None)
        self.chat_template = template.decode() if template else None
        self._pieces = TokenPieces(self._vocab)
        self._special_pieces = TokenPieces(self._vocab, special=True)
        self.bos_text = self._special_text(C.llama_vocab_bos(self._vocab))
        self.eos_text = self._special_text(C.llama_vocab_eos(self._vocab))
        self.n_vocab = self._n_vocab = int(C.llama_vocab_n_tokens(self._vocab))
        # From the GGUF's tokenizer.ggml.fim_{pre,suf,mid}_token_id (or, without them, the
        # tokens llama.cpp recognizes by their text); -1 where the model has none.
        pre, suf, mid = (
            int(f(self._vocab))
            for f in (C.llama_vocab_fim_pre, C.llama_vocab_fim_suf, C.llama_vocab_fim_mid)
        )
        self.fim = (pre, suf, mid) if min(pre, suf, mid) >= 0 else None

    @staticmethod
    def _load_model(
        path: Path, profile: ModelProfile, on_progress: Callable[[float], bool] | None
    ) -> Any:
        params = C.llama_model_default_params()
        params.n_gpu_layers = profile.n_gpu_layers
        params.main_gpu = profile.main_gpu
        params.use_extra_bufts = repack_weights(profile, system_info())
        if not params.use_extra_bufts and profile.cpu_repack is None:
            log.info("cpu_repack_off", model=profile.id, reason="llama.cpp would use AMX, "
                     "whose matrix multiply crashes; cpu_repack = true turns it on")  # fmt: skip
        if profile.tensor_split:
            split = (ctypes.c_float * C.LLAMA_MAX_DEVICES)(*profile.tensor_split)
            params.tensor_split = split
        key = id(on_progress)
        if on_progress is not None:
            _reporters[key] = on_progress
            params.progress_callback = _on_progress
            params.progress_callback_user_data = ctypes.c_void_p(key)
        try:
            model = C.llama_model_load_from_file(str(path).encode(), params)
        finally:
            _reporters.pop(key, None)
        if not model:
            raise EngineError(Code.LOAD_FAILED, f"llama.cpp could not load {path}: {_why(path)}")
        return model

    def _special_text(self, token: int) -> str:
        return (
            ""
            if token < 0
            else token_piece(self._vocab, token, special=True).decode(errors="replace")
        )

    # --- vocabulary -----------------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool, special: bool) -> list[int]:
        data = text.encode()
        room = len(data) + 2
        tokens = (C.llama_token * room)()
        n = C.llama_tokenize(self._vocab, data, len(data), tokens, room, add_bos, special)
        if n < 0:  # never more tokens than bytes plus BOS/EOS, but be safe
            room = -n
            tokens = (C.llama_token * room)()
            n = C.llama_tokenize(self._vocab, data, len(data), tokens, room, add_bos, special)
        return list(tokens[:n])

    def piece(self, token: int, special: bool = False) -> bytes:
        return self._special_pieces(token) if special else self._pieces(token)

    def is_end(self, token: int) -> bool:
        return bool(C.llama_vocab_is_eog(self._vocab, token))

    def control_tokens(self) -> frozenset[int]:
        vocab = self._vocab
        return frozenset(
            t
            for t in range(self._n_vocab)
            if C.llama_vocab_is_control(vocab, t) and not C.llama_vocab_is_eog(vocab, t)
        )

    # --- sampling -------------------------------------------------------------------------

    def check(self, params: SamplingParams) -> None:
        check_sampling(params, self._n_vocab)
        grammar = _grammar(params.json_schema)
        if grammar is not None:  # llama.cpp's own parser has the last word: ask it now
            C.llama_sampler_free(self._grammar_sampler(grammar))

    def _grammar_sampler(self, grammar: tuple[str, str]) -> Any:
        text, root = grammar
        constraint = C.llama_sampler_init_grammar(self._vocab, text.encode(), root.encode())
        if not constraint:
            raise EngineError(
                Code.INVALID_REQUEST,
                "the JSON schema's grammar did not parse: a schema no value can match (an "
                "empty enum or anyOf, say) has no grammar",
            )
        return constraint

    def sampler(self, params: SamplingParams, seed: int) -> LlamaSampler | GreedySampler:
        if plain_greedy(params):
            return GreedySampler(self._ctx, self._n_vocab)
        grammar = _grammar(params.json_schema)
        check_vocabulary(sorted(params.logit_bias), self._n_vocab, "logit_bias")
        chain = C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())

        def add(sampler: Any) -> None:
            C.llama_sampler_chain_add(chain, sampler)

        if params.logit_bias:  # first: on the model's own logits, as OpenAI applies it
            biases = (C.llama_logit_bias * len(params.logit_bias))(
                *(C.llama_logit_bias(t, b) for t, b in params.logit_bias.items())
            )
            add(C.llama_sampler_init_logit_bias(self._n_vocab, len(biases), biases))

        # The same chain, in the same order, as llama-cpp-python's own Llama.generate.
        add(
            C.llama_sampler_init_penalties(
                self._n_vocab,
                PENALTY_WINDOW,
                params.repeat_penalty,
                params.frequency_penalty,
                params.presence_penalty,
            )
        )
        if grammar is not None:
            try:
                add(self._grammar_sampler(grammar))
            except EngineError:
                C.llama_sampler_free(chain)
                raise
        if params.temperature <= 0:
            add(C.llama_sampler_init_greedy())
        else:
            add(C.llama_sampler_init_top_k(params.top_k))
            add(C.llama_sampler_init_top_p(params.top_p, 1))
            add(C.llama_sampler_init_min_p(params.min_p, 1))
            add(C.llama_sampler_init_temp(params.temperature))
            add(C.llama_sampler_init_dist(seed & 0xFFFFFFFF))  # any int: llama.cpp takes 32 bits
        return LlamaSampler(self._ctx, chain)

    def scores(self, index: int, token: int, top: int) -> Scores:
        return scores_at(logits_at(self._ctx, index, self._n_vocab), token, top)

    # --- decoding -------------------------------------------------------------------------

    def forget(self, seq: int, start: int) -> None:
        C.llama_memory_seq_rm(self._memory, seq, start, -1)

    def share(self, source: int, seq: int, length: int) -> None:
        C.llama_memory_seq_rm(self._memory, seq, 0, -1)
        if self.unified:  # the prefix's cells gain one more owner: nothing is copied
            C.llama_memory_seq_cp(self._memory, source, seq, 0, length)
            return
        # Sequences have KV buffers of their own, and llama.cpp copies between them only
        # whole: copy all of `source`, then drop what follows the prefix. Measured on the
        # demo model: a 1600-token prefix copied and one token decoded in 0.02 s, against
        # 8 s to prefill it.
        C.llama_memory_seq_cp(self._memory, source, seq, -1, -1)
        C.llama_memory_seq_rm(self._memory, seq, length, -1)

    def save(self, seq: int) -> bytes:
        size = C.llama_state_seq_get_size(self._ctx, seq)
        buffer = (ctypes.c_uint8 * size)()
        written = C.llama_state_seq_get_data(self._ctx, buffer, size, seq)
        return ctypes.string_at(buffer, written)  # one copy (slicing would build int objects)

    def restore(self, seq: int, data: bytes) -> None:
        C.llama_memory_seq_rm(self._memory, seq, 0, -1)
        buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if C.llama_state_seq_set_data(self._ctx, buffer, len(data), seq) != len(data):
            C.llama_memory_seq_rm(self._memory, seq, 0, -1)
            raise EngineError(Code.INTERNAL, "a saved cache did not fit back into its slot")

    def decode(self, rows: Sequence[Row]) -> None:
        batch = self._batch
        i = 0
        for row in rows:
            for offset, token in enumerate(row.tokens):
                batch.token[i] = token
                batch.pos[i] = row.start + offset
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = row.seq
                batch.logits[i] = row.all_logits
                i += 1
            if row.output >= 0:
                batch.logits[row.output] = True
        batch.n_tokens = i
        status = C.llama_decode(self._ctx, batch)
        if status != 0:
            raise EngineError(Code.DECODE_FAILED, f"llama_decode returned {status}")

    def close(self) -> None:
        if self._ctx:
            C.llama_batch_free(self._batch)
            C.llama_free(self._ctx)
            C.llama_model_free(self._model)
            self._ctx = None


def repack_weights(profile: ModelProfile, system_info: str) -> bool:
    """Whether llama.cpp may repack the CPU's share of the weights into its own layouts (its
    "extra buffer types": AMX tiles, interleaved blocks for AVX2 or NEON). The profile's
    `cpu_repack` decides; unset, not where llama.cpp would use AMX: its AMX matrix multiply
    crashes with several sequences in a batch (seen here on a Sapphire Rapids Xeon; llama.cpp
    issue 20824), and the plain AVX-512 kernels serve instead."""
    if profile.cpu_repack is not None:
        return profile.cpu_repack
    return "AMX_INT8 = 1" not in system_info


def flash_attention(profile: ModelProfile, gpu_offload: bool) -> int:
    """llama.cpp's flash_attn_type for the model's context. The profile's `flash_attn`
    decides; unset, llama.cpp's own choice (on where the device supports it) when layers go
    to a GPU, and off on the CPU: there llama.cpp runs attention for batches under 64 tokens
    (every decode step, a follow-up turn's prefill) through an untiled kernel, 1.3-5.7x
    slower than plain attention after 200-3000 cached tokens, while the tiled one gains
    ~1.2x only on long prefill chunks (bench/results: `attention`)."""
    if profile.flash_attn is not None:
        enabled = C.LLAMA_FLASH_ATTN_TYPE_ENABLED
        return int(enabled if profile.flash_attn else C.LLAMA_FLASH_ATTN_TYPE_DISABLED)
    on_gpu = gpu_offload and profile.n_gpu_layers != 0
    return int(C.LLAMA_FLASH_ATTN_TYPE_AUTO if on_gpu else C.LLAMA_FLASH_ATTN_TYPE_DISABLED)


def _why(path: Path) -> str:
    """Why llama.cpp may have refused a file, as far as its header tells."""
    try:
        metadata = read_metadata(path)
    except OSError as error:
        return error.strerror or str(error)
    except GGUFError as error:
        return str(error)
    arch = metadata.get("general.architecture") or "none named"
    return (
        f"its architecture ({arch}) or tensors are not what this llama.cpp reads (the "
        "neuron's log has llama.cpp's own words)"
    )


@functools.cache
def system_info() -> str:
    info: bytes = C.llama_print_system_info()
    return info.decode(errors="replace")


def check_sampling(params: SamplingParams, n_vocab: int) -> None:
    """What `LlamaBackend.sampler` refuses, found without the llama context (pure Python:
    the neuron runs it before it accepts a request): a JSON schema that has no grammar, a
    logit bias on a token outside the vocabulary."""
    _grammar(params.json_schema)
    check_vocabulary(sorted(params.logit_bias), n_vocab, "logit_bias")


def _grammar(schema: dict[str, object] | None) -> tuple[str, str] | None:
    # (key order kept: it is the output's order)
    return None if schema is None else _converted(json.dumps(schema))


# A request's schema is converted when the neuron checks it, again when the engine starts
# it and when its sampler is built (and a client sends the same schema request after
# request): rewrite and convert each once.
@functools.lru_cache(maxsize=64)
def _converted(schema: str) -> tuple[str, str]:
    try:
        safe = json.dumps(json_safe_patterns(json.loads(schema)))
    except PatternError as error:
        raise EngineError(Code.INVALID_REQUEST, f"the JSON schema: {error}") from None
    try:
        grammar = llama_cpp.LlamaGrammar.from_json_schema(safe, verbose=False)
    except Exception as error:  # the converter's own words (a KeyError's are a bare key)
        worded = isinstance(error, ValueError | AssertionError) and str(error)
        said = str(error) if worded else f"{type(error).__name__} {error}"
        raise EngineError(
            Code.INVALID_REQUEST, f"the JSON schema cannot be used for decoding: {said}"
        ) from None
    return strict_strings(grammar._grammar), grammar._root


# llama-cpp-python's converter lets a JSON string hold raw control characters, which JSON
# forbids (strict parsers such as Python's json and pydantic reject them); llama.cpp's own
# converter excludes them, as this does.
_LOOSE_CHAR = r'char ::= [^"\\]'
_STRICT_CHAR = r'char ::= [^"\\\x7F\x00-\x1F]'


def strict_strings(grammar: str) -> str:
    return grammar.replace(_LOOSE_CHAR, _STRICT_CHAR)
