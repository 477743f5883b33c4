"""What each catalogue model is and can do, read once when the neuron starts — from its GGUF's
header and vocabulary, never its weights — and announced in its catalogue entry: a model's
listing (architecture, size, digest) and its capabilities (tools, thinking) are then the
same whether it is loaded or not, and clients that choose features from them (IDEs, chat
UIs) see the model as it is.

Capabilities come from the dialect probe the load itself runs (`dialect.probe`, on the chat
template and the vocabulary's marker tokens), so a loaded model does what its entry said.
Reading a vocabulary takes tens of milliseconds, so what a file says is kept per file
(path, size, modification time).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
import structlog

from cortex_core.config import ModelProfile
from cortex_neuron.chat_template import TemplateError
from cortex_neuron.dialect import Dialect, detect_dialect
from cortex_neuron.gguf_header import Header, read_header
from cortex_neuron.markers import REASONING_PAIRS, TOOL_CALL_PAIRS, find_marker_pair

log = structlog.get_logger("neuron")

# The weights sampled into a file's digest: this much at the start of the data, and at the end.
DIGEST_SAMPLE = 1024 * 1024
# llama.cpp's file types (general.file_type: how most weights are stored), named as Ollama
# names a quantization level.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4", 39: "NVFP4", 40: "Q1_0",
}  # fmt: skip


@dataclass(frozen=True)
class ModelFacts:
    """What a catalogue entry announces of its model ("", 0 and () where not known)."""

    digest: str = ""
    architecture: str = ""
    parameter_count: int = 0
    context_length: int = 0  # what the model was trained for (its GGUF), not the served n_ctx
    embedding_length: int = 0
    quantization: str = ""
    # Ollama's words: completion, tools, thinking, insert; embedding for embedding models.
    capabilities: tuple[str, ...] = ()
    dialect: dict[str, str] = field(default_factory=dict)  # Dialect.summary()
    reasoning_markers: tuple[str, ...] = ()  # Dialect.inline_markers()
    file_size: int = 0  # the GGUF's size on disk, in bytes (what Ollama lists as a size)
    file_mtime: float = 0.0  # when it last changed (Unix seconds)


class Vocabulary(Protocol):
    """What the dialect probe reads of a model: a loaded backend has it, and so does a
    vocabulary read on its own."""

    chat_template: str | None
    bos_text: str
    eos_text: str
    fim: tuple[int, int, int] | None

    def tokenize(self, text: str, *, add_bos: bool, special: bool) -> list[int]: ...


# --- what the header says (pure) ----------------------------------------------------------


def header_facts(header: Header) -> dict[str, Any]:
    """Architecture, parameter count (the tensors' elements, as Ollama counts them),
    trained context, embedding width and quantization, from the header alone."""
    metadata = header.metadata
    arch = metadata.get("general.architecture")
    arch = arch if isinstance(arch, str) else ""

    def number(key: str) -> int:
        value = metadata.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    return {
        "architecture": arch,
        "parameter_count": sum(t.elements for t in header.tensors),
        "context_length": number(f"{arch}.context_length"),
        "embedding_length": number(f"{arch}.embedding_length"),
        "quantization": FILE_TYPES.get(number("general.file_type"), "")
        if "general.file_type" in metadata
        else "",
    }


def capabilities(dialect: Dialect | None, *, embedding: bool, fim: bool) -> tuple[str, ...]:
    """A model's capabilities, in Ollama's words, from its dialect (None: unknown, ())."""
    if embedding:
        return ("embedding",)
    if dialect is None:
        return ()
    summary = dialect.summary()
    return (
        "completion",
        *(("tools",) if summary["tools"] else ()),
        *(("thinking",) if summary["reasoning"] else ()),
        *(("insert",) if fim else ()),  # fill in the middle: /api/generate's suffix
    )


def dialect_of(vocabulary: Vocabulary) -> Dialect:
    """The model's dialect, as the load reads it: the template, with the vocabulary's
    single-token marker pairs where the template says nothing (raises TemplateError)."""

    def tokenize(text: str) -> list[int]:
        return vocabulary.tokenize(text, add_bos=False, special=True)

    pair = find_marker_pair(tokenize, REASONING_PAIRS)
    tool_pair = find_marker_pair(tokenize, TOOL_CALL_PAIRS)
    return detect_dialect(
        vocabulary.chat_template,
        bos=vocabulary.bos_text,
        eos=vocabulary.eos_text,
        vocab_pair=(pair.open_text, pair.close_text) if pair else None,
        vocab_tool_pair=(tool_pair.open_text, tool_pair.close_text) if tool_pair else None,
    )


# --- reading files --------------------------------------------------------------------------


def file_digest(path: str, header: Header, size: int) -> str:
    """A stable name of a GGUF's contents, 64 hex digits: the sha256 of the file's size, its
    whole header (metadata and tensor table) and the first and last MiB of its weights.
    Not Ollama's sha256 of the whole file, which would read gigabytes at every start; the
    same file gives the same digest on every neuron, and a different model a different one."""
    digest = hashlib.sha256(size.to_bytes(8, "little"))
    with open(path, "rb") as stream:
        digest.update(stream.read(header.data_start + DIGEST_SAMPLE))
        stream.seek(max(0, size - DIGEST_SAMPLE))
        digest.update(stream.read(DIGEST_SAMPLE))
    return digest.hexdigest()


class LlamaVocabulary:
    """A GGUF's vocabulary and chat template through llama.cpp (vocab_only: no weights), so
    tokenizing matches the loaded model's exactly."""

    def __init__(self, path: str) -> None:
        import llama_cpp.llama_cpp as C

        import cortex_neuron.llama_backend  # noqa: F401  (llama.cpp's log goes to ours)
        from cortex_neuron.pieces import token_piece

        self._C = C
        self._model: Any = None
        C.llama_backend_init()  # idempotent; the load path runs it too
        params = C.llama_model_default_params()
        params.vocab_only = True
        self._model = C.llama_model_load_from_file(path.encode(), params)
        if not self._model:
            raise OSError(f"llama.cpp could not read the vocabulary of {path}")
        self._vocab = C.llama_model_get_vocab(self._model)
        template = C.llama_model_chat_template(self._model, None)
        self.chat_template: str | None = template.decode() if template else None

        def special(token: int) -> str:
            if token < 0:
                return ""
            return token_piece(self._vocab, token, special=True).decode(errors="replace")

        self.bos_text = special(C.llama_vocab_bos(self._vocab))
        self.eos_text = special(C.llama_vocab_eos(self._vocab))
        ids = tuple(
            int(f(self._vocab))
            for f in (C.llama_vocab_fim_pre, C.llama_vocab_fim_suf, C.llama_vocab_fim_mid)
        )
        self.fim = (ids[0], ids[1], ids[2]) if min(ids) >= 0 else None

    def tokenize(self, text: str, *, add_bos: bool, special: bool) -> list[int]:
        C = self._C
        data = text.encode()
        room = len(data) + 2
        tokens = (C.llama_token * room)()
        n = C.llama_tokenize(self._vocab, data, len(data), tokens, room, add_bos, special)
        if n < 0:
            room = -n
            tokens = (C.llama_token * room)()
            n = C.llama_tokenize(self._vocab, data, len(data), tokens, room, add_bos, special)
        return list(tokens[:n])

    def close(self) -> None:
        if self._model:
            self._C.llama_model_free(self._model)
            self._model = None


@contextmanager
def llama_vocabulary(path: str) -> Iterator[LlamaVocabulary]:
    vocabulary = LlamaVocabulary(path)
    try:
        yield vocabulary
    finally:
        vocabulary.close()


@dataclass(frozen=True)
class _FileFacts:
    header: dict[str, Any]
    digest: str


@functools.lru_cache(maxsize=256)
def _file_facts(path: str, mtime_ns: int, size: int) -> _FileFacts:
    header = read_header(path)
    return _FileFacts(header_facts(header), file_digest(path, header, size))


@functools.lru_cache(maxsize=256)
def _file_dialect(path: str, mtime_ns: int, size: int) -> tuple[Dialect, bool]:
    """The file's dialect and whether it has fill-in-the-middle tokens."""
    with llama_vocabulary(path) as vocabulary:
        return dialect_of(vocabulary), vocabulary.fim is not None


def _facts(
    base: dict[str, Any],
    digest: str,
    profile: ModelProfile,
    probed: tuple[Dialect, bool] | None,
    stat: os.stat_result | None = None,
) -> ModelFacts:
    dialect, fim = probed if probed is not None else (None, False)
    return ModelFacts(
        digest=digest,
        **base,
        file_size=stat.st_size if stat is not None else 0,
        file_mtime=stat.st_mtime if stat is not None else 0.0,
        capabilities=capabilities(dialect, embedding=profile.embedding, fim=fim),
        dialect=dialect.summary() if dialect is not None and not profile.embedding else {},
        reasoning_markers=tuple(dialect.inline_markers())
        if dialect is not None and not profile.embedding
        else (),
    )


def _scripted_facts(profile: ModelProfile) -> ModelFacts:
    from cortex_neuron.scripted_backend import ScriptedBackend

    assert profile.script is not None
    # No file: the digest names the script the model plays.
    digest = hashlib.sha256(b"script:" + msgspec.json.encode(profile.script)).hexdigest()
    backend = ScriptedBackend(profile, profile.script)
    probed = (dialect_of(backend), backend.fim is not None)
    return _facts({"context_length": profile.n_ctx}, digest, profile, probed)


def model_facts(profile: ModelProfile) -> ModelFacts:
    """What the entry of `profile` announces; what cannot be read is left unknown (and the
    load, if one is asked for, says why)."""
    if profile.script is not None:
        return _scripted_facts(profile)
    try:
        stat = os.stat(profile.path)
        key = (os.path.abspath(profile.path), stat.st_mtime_ns, stat.st_size)
        read = _file_facts(*key)
    except Exception as error:  # a file that is not what it says: this model's facts only
        log.warning("model_facts_unknown", model=profile.id, error=str(error) or repr(error))
        return ModelFacts()
    probed: tuple[Dialect, bool] | None = None
    if not profile.embedding:
        try:
            probed = _file_dialect(*key)
        except (OSError, TemplateError) as error:
            log.warning("model_capabilities_unknown", model=profile.id, error=str(error))
        except Exception as error:  # one model's odd file must not stop the neuron starting
            log.exception("model_capabilities_unknown", model=profile.id, error=repr(error))
    return _facts(read.header, read.digest, profile, probed, stat)
