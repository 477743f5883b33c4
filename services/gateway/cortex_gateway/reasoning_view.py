"""How reasoning reaches an OpenAI chat client (pure).

By default reasoning goes to `reasoning_content` and never into `content`. A client that
sends `x-include-thinking: true|1|yes` gets it inline instead, wrapped in the model's own
literal markers — the shape clients with their own marker parser expect. The close marker
is written when the first answer text arrives, or at the finish if the reasoning never
closed. A model without markers produces no reasoning, so the header changes nothing.
"""

from __future__ import annotations

from typing import Any

INCLUDE_THINKING_HEADER = "x-include-thinking"


def wants_inline_thinking(value: str | None) -> bool:
    return (value or "").strip().lower() in {"true", "1", "yes"}


class ChatDeltas:
    def __init__(self, inline_markers: list[str] | None) -> None:
        """`inline_markers`: the model's [open, close] when the client wants them inline."""
        self._markers = inline_markers if inline_markers and len(inline_markers) == 2 else None
        self._open = False

    def reasoning(self, text: str) -> dict[str, Any] | None:
        if not text:
            return None
        if self._markers is None:
            return {"reasoning_content": text}
        if not self._open:
            self._open = True
            return {"content": self._markers[0] + text}
        return {"content": text}

    def text(self, text: str) -> dict[str, Any] | None:
        content = self._close() + text
        return {"content": content} if content else None

    def finish(self) -> dict[str, Any] | None:
        closing = self._close()
        return {"content": closing} if closing else None

    def _close(self) -> str:
        if self._open and self._markers is not None:
            self._open = False
            return self._markers[1]
        return ""
