"""What happens to each generated token after sampling (pure): decode its bytes
incrementally, let the model's dialect parser split the text into answer, reasoning and
tool calls, apply stop sequences to the answer, and count tokens. The engine thread feeds
it and pushes what it returns."""

from __future__ import annotations

import codecs
from collections.abc import Mapping, Sequence
from typing import Any

from cortex_neuron.channel import CallChunk, TextChunk
from cortex_neuron.dialect import CallDelta, CallMode, Dialect, ParsedCall, new_parser
from cortex_neuron.text_stream import StopScanner

Chunk = TextChunk | CallChunk


class OutputChannels:
    def __init__(
        self,
        dialect: Dialect,
        prompt_text: str,
        stops: Sequence[str],
        schemas: Mapping[str, Mapping[str, Any]] | None = None,
        stream_calls: bool = False,
        calls: CallMode = "parse",
    ) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._parser = new_parser(dialect, prompt_text, schemas, stream_calls, calls)
        # Stop sequences end the answer; reasoning and tool calls never stop generation.
        self._stops = StopScanner(stops)
        self._uncounted = 0  # tokens not yet attributed to a chunk
        self.tokens = 0
        self.reasoning_tokens = 0
        self.tool_calls = 0
        self.stopped = False

    @property
    def stop_sequence(self) -> str:
        return self._stops.matched

    @property
    def in_reasoning(self) -> bool:
        return self._parser.state == "reasoning"

    @property
    def before_answer(self) -> bool:
        """In the model's reasoning or a message header: what a JSON schema does not hold."""
        return self._parser.state == "reasoning" or self._parser.in_header

    @property
    def in_call(self) -> bool:
        """Inside a tool call section (what a JSON schema for the answer does not hold)."""
        return self._parser.state == "tool"

    @property
    def unparsed(self) -> int:
        """Tool sections that did not parse (returned as text)."""
        return self._parser.unparsed

    def add(self, piece: bytes) -> list[Chunk]:
        """One generated token's bytes → the chunks to stream."""
        self.tokens += 1
        self._uncounted += 1
        before = self._parser.state
        pieces = self._parser.feed(self._decoder.decode(piece))
        if "reasoning" in (before, self._parser.state):
            self.reasoning_tokens += 1
        return self._chunks(pieces)

    def finish(self) -> list[Chunk]:
        """Whatever is still held back, once generation has ended."""
        pieces = self._parser.feed(self._decoder.decode(b"", final=True))
        chunks = self._chunks([*pieces, *self._parser.finish()])
        if not self.stopped:
            tail = self._stops.flush()
            if tail:
                chunks.append(TextChunk(tail, 0))
        return chunks

    def _chunks(self, pieces: list[Any]) -> list[Chunk]:
        chunks: list[Chunk] = []
        for piece in pieces:
            if self.stopped:
                break
            tokens, self._uncounted = self._uncounted, 0
            if isinstance(piece, ParsedCall):
                self.tool_calls += 1
                chunks.append(CallChunk(piece.name, piece.arguments, tokens))
            elif isinstance(piece, CallDelta):
                self.tool_calls += piece.opened
                chunks.append(
                    CallChunk(piece.name, piece.arguments, tokens, piece.opened, piece.closed)
                )
            elif piece[0] == "reasoning":
                chunks.append(TextChunk(piece[1], tokens, "reasoning"))
            else:
                text, self.stopped = self._stops.feed(piece[1])
                if text or tokens:
                    chunks.append(TextChunk(text, tokens))
        return chunks
