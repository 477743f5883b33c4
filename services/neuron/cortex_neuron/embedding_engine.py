"""An embedding model's engine: its own thread owns the llama.cpp context (model_thread.py);
requests queue to it and come back as futures."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from cortex_core.config import ModelProfile
from cortex_neuron.dialect import Dialect
from cortex_neuron.errors import EngineError
from cortex_neuron.model_thread import STOP, ModelThread
from cortex_wire.outcomes import Code


@dataclass
class EmbedJob:
    texts: list[str]
    future: asyncio.Future[tuple[list[list[float]], int]]
    loop: asyncio.AbstractEventLoop = field(repr=False)
    truncate: bool = False  # cut an input too long for the context instead of refusing it


def fitted(inputs: list[list[int]], n_ctx: int, truncate: bool, model: str) -> list[list[int]]:
    """Each input's tokens within the context: cut at its end (`truncate`), or refused."""
    for index, tokens in enumerate(inputs):
        if not tokens:
            raise EngineError(Code.INVALID_REQUEST, f"input[{index}] has no tokens")
        if len(tokens) > n_ctx and not truncate:
            raise EngineError(
                Code.CONTEXT_LENGTH_EXCEEDED,
                f"input[{index}] is {len(tokens)} tokens; model {model!r} takes at most {n_ctx}",
            )
    return [tokens[:n_ctx] for tokens in inputs]


class EmbeddingEngine(ModelThread[Any]):
    kind = "embed"
    dialect = Dialect()  # it writes no text

    def __init__(self, profile: ModelProfile, n_threads: int = 0, queue_depth: int = 64) -> None:
        super().__init__(profile, n_threads, queue_depth)
        self.pooling = ""

    async def embed(
        self, texts: list[str], truncate: bool = False
    ) -> tuple[list[list[float]], int]:
        """Vectors for `texts` and the tokens they took; EngineError if it cannot."""
        loop = asyncio.get_running_loop()
        job = EmbedJob(texts, loop.create_future(), loop, truncate)
        self._enqueue(job)
        return await job.future

    async def stop(self) -> None:
        await self._join()

    def count_tokens(self, request: Any) -> int:
        raise EngineError(
            Code.INVALID_REQUEST,
            f"model {self.profile.id!r} is an embedding model: it has no prompt",
        )

    # --- the model's thread -------------------------------------------------------------

    def _open(self) -> Any:
        from cortex_neuron.llama_embedder import LlamaEmbedder

        embedder = LlamaEmbedder(self.profile, n_threads=self._n_threads)
        self.pooling = embedder.pooling
        return embedder

    def _serve(self, embedder: Any) -> None:
        try:
            while (job := self._jobs.get()) is not STOP:
                self._embed(embedder, job)
        finally:
            while not self._jobs.empty():
                leftover = self._jobs.get_nowait()
                if isinstance(leftover, EmbedJob):
                    gone = EngineError(Code.UNLOADING, "model is being unloaded")
                    self._settle(leftover.future, None, gone)

    def _close(self, embedder: Any) -> None:
        embedder.close()

    def _embed(self, embedder: Any, job: EmbedJob) -> None:
        self.busy = 1
        started = time.perf_counter()
        try:
            tokenized = [embedder.tokenize(text) for text in job.texts]
            inputs = fitted(tokenized, embedder.n_ctx, job.truncate, self.profile.id)
            vectors = embedder.embed(inputs)
        except EngineError as error:
            self._settle(job.future, None, error)
            return
        finally:
            self.busy = 0
            self.last_used_at = time.time()
        tokens = sum(len(t) for t in inputs)
        elapsed = time.perf_counter() - started
        self.tokens_per_s = tokens / elapsed if elapsed > 0 else 0.0
        self._settle(job.future, (vectors, tokens), None)
