"""The bounded hand-off from an engine thread to the event loop, one per request.

The engine thread pushes events without ever blocking; the loop side takes everything that
has accumulated at once, which is what coalesces tokens into frames when the bus side runs
behind. The loop is woken only when its reader is waiting: a paced stream's reader (asleep
between frames, not waiting) costs the loop no wakeup per token.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from cortex_wire.messages import FinishReason, Timings, TokenLogprob, Usage, WireError

Phase = Literal["queued", "prefill", "decode"]


ChunkKind = Literal["text", "reasoning"]


@dataclass(frozen=True, slots=True)
class TextChunk:
    """Generated text for one channel."""

    text: str
    tokens: int
    kind: ChunkKind = "text"
    # The answer tokens this text came from, scored (when the request asked).
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class PromptScored:
    """Every prompt token with its log probability (the first has none), once the prompt
    is in, before any generated text."""

    logprobs: tuple[TokenLogprob, ...]


@dataclass(frozen=True, slots=True)
class CallChunk:
    """A tool call parsed on the neuron: its name and its arguments (JSON text). A call
    streamed as it grows is several chunks: the `first` names it, each adds arguments
    text, the `last` ends it; a whole call is both."""

    name: str
    arguments: str
    tokens: int = 0
    first: bool = True
    last: bool = True


@dataclass(frozen=True, slots=True)
class Finished:
    finish_reason: FinishReason
    usage: Usage
    stop_sequence: str = ""
    timings: Timings = field(default_factory=Timings)
    context_full: bool = False  # "length" because the context had no room left
    end_logprob: TokenLogprob | None = None  # the end token sampled, scored


@dataclass(frozen=True, slots=True)
class Errored:
    error: WireError


Event = TextChunk | CallChunk | PromptScored | Finished | Errored


class ChannelOverflow(Exception):
    """The consumer fell too far behind; the producer should stop this request."""


class TokenChannel:
    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = 4096) -> None:
        self._loop = loop
        self._limit = limit
        self._items: deque[Event] = deque()
        self._lock = threading.Lock()
        self._ready = asyncio.Event()
        self._waiting = False  # the reader waits in take() for the next event
        self.phase: Phase = "queued"

    # --- engine thread side -----------------------------------------------------------

    def push(self, event: Event) -> None:
        """Never blocks. Terminal events always fit; text beyond the limit overflows."""
        with self._lock:
            if len(self._items) >= self._limit and not isinstance(event, Finished | Errored):
                raise ChannelOverflow
            self._items.append(event)
            wake, self._waiting = self._waiting, False
        if wake:
            self._loop.call_soon_threadsafe(self._ready.set)

    # --- event loop side --------------------------------------------------------------

    async def take(self, timeout: float) -> list[Event]:
        """Everything pushed so far, waiting up to `timeout` for the first; [] on timeout."""
        deadline = self._loop.time() + timeout
        while True:
            with self._lock:
                if self._items:
                    items = list(self._items)
                    self._items.clear()
                    self._waiting = False
                    return items
                remaining = deadline - self._loop.time()
                self._waiting = remaining > 0
                if not self._waiting:
                    return []
                self._ready.clear()  # a wakeup left over from an earlier wait
            try:
                # Not wait_for: that wraps the wait in a new task, once per frame.
                async with asyncio.timeout(remaining):
                    await self._ready.wait()
            except TimeoutError:
                pass  # one more look, then []
