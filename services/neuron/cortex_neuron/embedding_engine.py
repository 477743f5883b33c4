"""An embedding model's engine: one thread owns the llama.cpp context for its whole life
(see the note on OpenMP in DESIGN.md); requests queue to it and come back as futures."""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from cortex_core.config import ModelProfile
from cortex_neuron.dialect import Dialect
from cortex_neuron.errors import EngineError
from cortex_wire.outcomes import Code

_STOP = object()


@dataclass
class EmbedJob:
    texts: list[str]
    future: asyncio.Future[tuple[list[list[float]], int]]
    loop: asyncio.AbstractEventLoop = field(repr=False)


class EmbeddingEngine:
    dialect = Dialect()  # it writes no text

    def __init__(self, profile: ModelProfile, n_threads: int = 0, queue_depth: int = 64) -> None:
        self.profile = profile
        self._n_threads = n_threads or max(1, os.cpu_count() or 1)
        self._jobs: queue.Queue[Any] = queue.Queue(maxsize=queue_depth)
        self._thread: threading.Thread | None = None
        self._loaded: asyncio.Future[None] | None = None
        self._exited: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.busy = 0
        self.tokens_per_s = 0.0
        self.last_used_at = 0.0
        self.pooling = ""

    @property
    def queued(self) -> int:
        return self._jobs.qsize()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loaded = self._loop.create_future()
        self._exited = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._run, name=f"embed:{self.profile.id}", daemon=True
        )
        self._thread.start()
        await self._loaded

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Vectors for `texts` and the tokens they took; EngineError if it cannot."""
        loop = asyncio.get_running_loop()
        job = EmbedJob(texts, loop.create_future(), loop)
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise EngineError(
                Code.OVERLOADED, f"model {self.profile.id!r} has {self.queued} requests queued",
            ) from None  # fmt: skip
        return await job.future

    async def stop(self) -> None:
        if self._thread is None or self._exited is None:
            return
        self._jobs.put(_STOP)
        await self._exited

    def count_tokens(self, request: Any) -> int:
        raise EngineError(
            Code.INVALID_REQUEST,
            f"model {self.profile.id!r} is an embedding model: it has no prompt",
        )

    # --- the engine thread ----------------------------------------------------------------

    def _settle(
        self, future: asyncio.Future[Any] | None, result: Any, error: BaseException | None
    ) -> None:
        if future is None or self._loop is None:
            return

        def settle() -> None:
            if not future.done():
                future.set_exception(error) if error else future.set_result(result)

        self._loop.call_soon_threadsafe(settle)

    def _run(self) -> None:
        from cortex_neuron.llama_embedder import LlamaEmbedder

        try:
            embedder = LlamaEmbedder(self.profile, n_threads=self._n_threads)
        except EngineError as error:
            self._settle(self._loaded, None, error)
            self._settle(self._exited, None, None)
            return
        self.pooling = embedder.pooling
        self.last_used_at = time.time()
        self._settle(self._loaded, None, None)
        try:
            while (job := self._jobs.get()) is not _STOP:
                self._serve(embedder, job)
        finally:
            while not self._jobs.empty():
                leftover = self._jobs.get_nowait()
                if isinstance(leftover, EmbedJob):
                    gone = EngineError(Code.UNLOADING, "model is being unloaded")
                    self._settle(leftover.future, None, gone)
            embedder.close()
            self._settle(self._exited, None, None)

    def _serve(self, embedder: Any, job: EmbedJob) -> None:
        self.busy = 1
        started = time.perf_counter()
        try:
            inputs = [embedder.tokenize(text) for text in job.texts]
            for index, tokens in enumerate(inputs):
                if len(tokens) > embedder.n_ctx:
                    raise EngineError(
                        Code.CONTEXT_LENGTH_EXCEEDED,
                        f"input[{index}] is {len(tokens)} tokens; model {self.profile.id!r} "
                        f"takes at most {embedder.n_ctx}",
                    )
                if not tokens:
                    raise EngineError(Code.INVALID_REQUEST, f"input[{index}] has no tokens")
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
