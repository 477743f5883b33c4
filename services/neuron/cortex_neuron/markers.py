"""Marker-token pairs found in a model's own vocabulary (pure).

Where a chat template says nothing of reasoning or tool calls, a pair of single tokens in
the vocabulary still tells how the model writes them — never the model's name. (The
dialect parser then reads them as text: their tokens are rendered as their own text.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Probed in this order; the first pair whose markers are each exactly one token wins.
REASONING_PAIRS: tuple[tuple[str, str], ...] = (
    ("<think>", "</think>"),
    ("[THINK]", "[/THINK]"),
    ("<thought>", "</thought>"),
    ("<reasoning>", "</reasoning>"),
)
TOOL_CALL_PAIRS: tuple[tuple[str, str], ...] = (("<tool_call>", "</tool_call>"),)


@dataclass(frozen=True)
class MarkerPair:
    open_text: str
    close_text: str
    open_id: int
    close_id: int

    @property
    def texts(self) -> list[str]:
        return [self.open_text, self.close_text]


def find_marker_pair(
    tokenize: Callable[[str], Sequence[int]], candidates: Sequence[tuple[str, str]]
) -> MarkerPair | None:
    """The first candidate pair whose two markers are single, distinct tokens.

    `tokenize` must parse special tokens (llama.cpp: special=True) and add no BOS.
    """
    for open_text, close_text in candidates:
        open_ids, close_ids = list(tokenize(open_text)), list(tokenize(close_text))
        if len(open_ids) == 1 and len(close_ids) == 1 and open_ids != close_ids:
            return MarkerPair(open_text, close_text, open_ids[0], close_ids[0])
    return None
