"""Marker-token pairs found in a model's own vocabulary, and routing by token id (pure).

Reasoning models write their scratchpad between two marker tokens. Which pair a model uses
is read from its vocabulary at load time — never from its name. Routing then compares token
ids, not text: a CONTROL-typed marker detokenises to an empty string, so text matching would
silently miss it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

# Probed in this order; the first pair whose markers are each exactly one token wins.
REASONING_PAIRS: tuple[tuple[str, str], ...] = (
    ("<think>", "</think>"),
    ("[THINK]", "[/THINK]"),
    ("<thought>", "</thought>"),
    ("<reasoning>", "</reasoning>"),
)
TOOL_CALL_PAIRS: tuple[tuple[str, str], ...] = (("<tool_call>", "</tool_call>"),)

Channel = Literal["text", "reasoning", "tool_call"]


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


def prompt_opens_reasoning(prompt_ids: Sequence[int], pair: MarkerPair | None) -> bool:
    """Whether the prompt ends inside an open marker (templates that inject the opener)."""
    if pair is None:
        return False
    for token in reversed(prompt_ids):
        if token == pair.close_id:
            return False
        if token == pair.open_id:
            return True
    return False


class ReasoningRouter:
    """Sends each generated token id to the text, reasoning or tool-call channel by state.

    The reasoning pair switches between text and reasoning; the tool-call pair, seen in
    text, opens and closes a tool-call block. Markers are never emitted: `route` returns
    None for them. Inside reasoning a tool marker is just reasoning, and inside a tool-call
    block a reasoning marker is just part of the block.
    """

    def __init__(
        self,
        pair: MarkerPair | None,
        in_reasoning: bool = False,
        tool_pair: MarkerPair | None = None,
    ) -> None:
        self._pair = pair
        self._tool_pair = tool_pair
        self.channel: Channel = "reasoning" if in_reasoning and pair else "text"

    def route(self, token_id: int) -> Channel | None:
        pair, tools, channel = self._pair, self._tool_pair, self.channel
        if pair is not None and channel != "tool_call":
            if token_id == pair.open_id and channel == "text":
                self.channel = "reasoning"
                return None
            if token_id == pair.close_id and channel == "reasoning":
                self.channel = "text"
                return None
        if tools is not None and channel != "reasoning":
            if token_id == tools.open_id and channel == "text":
                self.channel = "tool_call"
                return None
            if token_id == tools.close_id and channel == "tool_call":
                self.channel = "text"
                return None
        return channel
