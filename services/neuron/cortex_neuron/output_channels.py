"""What happens to each generated token after sampling (pure): route it by id to the text or
reasoning channel, decode it incrementally per channel, apply stop sequences to the text,
and count tokens. The engine thread feeds it and pushes what it returns."""

from __future__ import annotations

from collections.abc import Sequence

from cortex_neuron.channel import TextChunk
from cortex_neuron.markers import Channel, MarkerPair, ReasoningRouter
from cortex_neuron.text_stream import TextAssembler


class OutputChannels:
    def __init__(self, pair: MarkerPair | None, in_reasoning: bool, stops: Sequence[str]) -> None:
        self._router = ReasoningRouter(pair, in_reasoning)
        # Stop sequences end the answer; the reasoning channel never stops generation.
        self._assemblers: dict[Channel, TextAssembler] = {
            "text": TextAssembler(stops),
            "reasoning": TextAssembler(()),
        }
        self.tokens = 0
        self.reasoning_tokens = 0
        self.stopped = False

    def add(self, token_id: int, piece: bytes) -> list[TextChunk]:
        """One generated token (its id and its bytes) → the chunks to stream."""
        self.tokens += 1
        before = self._router.channel
        channel = self._router.route(token_id)
        if channel is None:  # a marker: counted as reasoning, never emitted
            self.reasoning_tokens += 1
            chunks = [TextChunk("", 1, reasoning=True)]
            if self._router.channel != before:
                chunks = self._flush(before) + chunks
            return chunks
        if channel == "reasoning":
            self.reasoning_tokens += 1
            text, _ = self._assemblers["reasoning"].feed(piece)
            return [TextChunk(text, 1, reasoning=True)]
        text, self.stopped = self._assemblers["text"].feed(piece)
        return [TextChunk(text, 1)]

    def finish(self) -> list[TextChunk]:
        """Whatever is still held back, once generation has ended."""
        chunks = self._flush("reasoning")
        if not self.stopped:
            chunks += self._flush("text")
        return chunks

    def _flush(self, channel: Channel) -> list[TextChunk]:
        if channel == "text" and self.stopped:
            return []
        tail = self._assemblers[channel].finish()
        return [TextChunk(tail, 0, reasoning=channel == "reasoning")] if tail else []
