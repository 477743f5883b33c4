"""Embeddings on llama.cpp: a context in embeddings mode, pooled the way the GGUF says.

The pooling (mean, CLS, last, …) is the model's own (`{arch}.pooling_type`); a model without
one is not an embedding model and is refused at load. Inputs are decoded several at a time,
one sequence each, as many as fit in one batch; every vector is L2-normalised (as OpenAI's
and llama-server's are). Everything here runs on the engine thread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import llama_cpp.llama_cpp as C

from cortex_core.config import ModelProfile
from cortex_neuron import llama_backend
from cortex_neuron.errors import EngineError
from cortex_wire.outcomes import Code

# Sequences decoded together at most (one batch of the context).
MAX_SEQUENCES = 16
POOLING_NAMES = {1: "mean", 2: "cls", 3: "last", 4: "rank"}


def batches(lengths: Sequence[int], room: int, most: int) -> list[list[int]]:
    """Input indexes grouped in order so that each group's tokens fit in `room` and it
    has at most `most` inputs (pure)."""
    groups: list[list[int]] = []
    used = 0
    for index, length in enumerate(lengths):
        if not groups or used + length > room or len(groups[-1]) >= most:
            groups.append([])
            used = 0
        groups[-1].append(index)
        used += length
    return groups


def normalized(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm > 0 else list(vector)


# What llama.cpp rounds a context's size up to.
CONTEXT_PAD = 256


class LlamaEmbedder:
    def __init__(self, profile: ModelProfile, *, n_threads: int) -> None:
        path = Path(profile.path)
        self._model = llama_backend.load_model(profile)
        self._vocab = C.llama_model_get_vocab(self._model)
        params = C.llama_context_default_params()
        # Non-causal models need a whole input in one micro-batch. llama.cpp pads a
        # context to a multiple of 256; the batches are padded alike, or an input longer
        # than the batch but within the padded context aborts the process (GGML_ASSERT).
        padded = -(-profile.n_ctx // CONTEXT_PAD) * CONTEXT_PAD
        params.n_ctx = params.n_batch = params.n_ubatch = padded
        params.n_seq_max = MAX_SEQUENCES
        params.kv_unified = True  # sequences of any length share the context
        params.embeddings = True
        params.n_threads = params.n_threads_batch = n_threads
        params.no_perf = True
        self._ctx = C.llama_init_from_model(self._model, params)
        if not self._ctx:
            C.llama_model_free(self._model)
            raise EngineError(
                Code.LOAD_FAILED, f"llama.cpp could not create an embedding context for {path}"
            )
        pooling = int(C.llama_pooling_type(self._ctx))
        if pooling not in POOLING_NAMES:
            self.close()
            raise EngineError(
                Code.LOAD_FAILED,
                f"{path} has no pooling type in its metadata, so it is not an embedding model",
            )
        self.pooling = POOLING_NAMES[pooling]
        # The inputs it takes: the catalogue's context (the padding is llama.cpp's own).
        self.n_ctx = min(profile.n_ctx, int(C.llama_n_ctx(self._ctx)))
        self.n_embd = int(C.llama_model_n_embd(self._model))
        self._memory = C.llama_get_memory(self._ctx)
        self._batch = C.llama_batch_init(self.n_ctx, 0, MAX_SEQUENCES)
        self._add_bos = bool(C.llama_vocab_get_add_bos(self._vocab))

    def tokenize(self, text: str) -> list[int]:
        data = text.encode()
        room = len(data) + 2
        tokens = (C.llama_token * room)()
        n = C.llama_tokenize(self._vocab, data, len(data), tokens, room, self._add_bos, False)
        return list(tokens[: max(n, 0)])

    def embed(self, inputs: Sequence[Sequence[int]]) -> list[list[float]]:
        """One normalised vector per input (token ids; each must fit in the context)."""
        vectors: list[list[float]] = [[] for _ in inputs]
        for group in batches([len(t) for t in inputs], self.n_ctx, MAX_SEQUENCES):
            self._decode(inputs, group)
            for seq, index in enumerate(group):
                pooled = C.llama_get_embeddings_seq(self._ctx, seq)
                if not pooled:
                    raise EngineError(Code.EMBEDDING_FAILED, "llama.cpp returned no embedding")
                vectors[index] = normalized(pooled[: self.n_embd])
        return vectors

    def _decode(self, inputs: Sequence[Sequence[int]], group: list[int]) -> None:
        C.llama_memory_clear(self._memory, True)
        batch = self._batch
        n = 0
        for seq, index in enumerate(group):
            for position, token in enumerate(inputs[index]):
                batch.token[n] = token
                batch.pos[n] = position
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = seq
                batch.logits[n] = True
                n += 1
        batch.n_tokens = n
        if C.llama_decode(self._ctx, batch) != 0:
            raise EngineError(Code.EMBEDDING_FAILED, "llama.cpp could not decode the inputs")

    def close(self) -> None:
        if getattr(self, "_batch", None) is not None:
            C.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            C.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            C.llama_model_free(self._model)
            self._model = None
