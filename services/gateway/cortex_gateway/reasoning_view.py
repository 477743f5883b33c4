"""How reasoning reaches an OpenAI chat client (pure).

By default reasoning goes to `reasoning_content` and never into `content`. A client that
sends `x-include-thinking: true|1|yes` gets it inline instead, wrapped in the model's own
literal markers — the shape clients with their own marker parser expect. The close marker
is written when the first answer text arrives, or at the finish if the reasoning never
closed. A model without markers produces no reasoning, so the header changes nothing.
"""

from __future__ import annotations

INCLUDE_THINKING_HEADER = "x-include-thinking"


def wants_inline_thinking(value: str | None) -> bool:
    return (value or "").strip().lower() in {"true", "1", "yes"}
