"""A loaded model owned by one dedicated OS thread for its whole life.

llama.cpp's OpenMP build decodes ~3x slower when calls arrive from several threads, so the
thread that loads a model is the only one that ever touches it: work reaches it through a
bounded queue. Subclasses say how to open the model on that thread, how to serve from the
queue until `STOP`, and how to close it; starting, stopping and admission are here.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import time
from typing import Any, Generic, TypeVar

from cortex_core.config import ModelProfile
from cortex_neuron.errors import EngineError
from cortex_wire.outcomes import Code

STOP = object()  # put on the queue: the thread closes the model and ends
Resource = TypeVar("Resource")


class ModelThread(Generic[Resource]):
    kind = "model"  # names the thread: "<kind>:<model id>"

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

    @property
    def queued(self) -> int:
        return self._jobs.qsize()

    async def start(self) -> None:
        """Open the model on its own thread; raises EngineError if it cannot."""
        self._loop = asyncio.get_running_loop()
        self._loaded = self._loop.create_future()
        self._exited = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._run, name=f"{self.kind}:{self.profile.id}", daemon=True
        )
        self._thread.start()
        await self._loaded

    def _enqueue(self, job: object) -> None:
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise EngineError(
                Code.OVERLOADED, f"model {self.profile.id!r} has {self.queued} requests queued"
            ) from None

    async def _join(self) -> None:
        """Let the thread finish what it serves, close the model and end."""
        if self._thread is None or self._exited is None:
            return
        self._jobs.put(STOP)
        await self._exited

    # --- on the model's thread --------------------------------------------------------------

    def _open(self) -> Resource:
        raise NotImplementedError

    def _serve(self, resource: Resource) -> None:
        """Take jobs from the queue until STOP."""
        raise NotImplementedError

    def _close(self, resource: Resource) -> None:
        raise NotImplementedError

    def _settle(
        self, future: asyncio.Future[Any] | None, result: Any, error: BaseException | None
    ) -> None:
        """Resolve `future` on the event loop (from the model's thread)."""
        if future is None or self._loop is None:
            return

        def settle() -> None:
            if not future.done():
                future.set_exception(error) if error else future.set_result(result)

        self._loop.call_soon_threadsafe(settle)

    def _run(self) -> None:
        try:
            resource = self._open()
        except EngineError as error:
            self._settle(self._loaded, None, error)
            self._settle(self._exited, None, None)
            return
        # A model loaded for a waiting request counts as just used, so LRU does not pick it
        # before that request arrives.
        self.last_used_at = time.time()
        self._settle(self._loaded, None, None)
        try:
            self._serve(resource)
        finally:
            self._close(resource)
            self._settle(self._exited, None, None)
