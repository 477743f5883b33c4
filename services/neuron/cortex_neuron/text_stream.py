"""Turning generated token bytes into text deltas (pure).

Bytes are decoded incrementally so a UTF-8 character split across tokens is never emitted
broken, and text that could be the start of a stop sequence is held back until it is
known not to be one.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence


class StopScanner:
    """Finds stop sequences in streamed text; emits only text that precedes any stop."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._held = ""
        self.matched = ""  # the stop sequence that ended the text, once one has

    def feed(self, text: str) -> tuple[str, bool]:
        """Add text; return (text safe to emit now, whether a stop sequence was reached)."""
        if not self._stops:
            return text, False
        buffer = self._held + text
        hits = [(i, s) for s in self._stops if (i := buffer.find(s)) >= 0]
        if hits:
            self._held = ""
            first, self.matched = min(hits)
            return buffer[:first], True
        keep = self._longest_partial_stop(buffer)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held

    def _longest_partial_stop(self, buffer: str) -> int:
        """Length of the longest suffix of `buffer` that is a proper prefix of a stop."""
        best = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(buffer)), best, -1):
                if buffer.endswith(stop[:size]):
                    best = size
                    break
        return best


class TextAssembler:
    """Bytes of successive tokens in, complete text out, with stop sequences applied."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = StopScanner(stops)

    @property
    def matched_stop(self) -> str:
        return self._stops.matched

    def feed(self, piece: bytes) -> tuple[str, bool]:
        return self._stops.feed(self._decoder.decode(piece))

    def finish(self) -> str:
        """Whatever is still held (an unfinished character becomes U+FFFD)."""
        tail, _ = self._stops.feed(self._decoder.decode(b"", final=True))
        return tail + self._stops.flush()
