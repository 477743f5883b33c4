"""What happens to each generated token after sampling (pure): route it by id to the text or
reasoning channel, decode it incrementally per channel, apply stop sequences to the text,
and count tokens. The engine thread feeds it and pushes what it returns."""

from __future__ import annotations

from collections.abc import Sequence

from cortex_neuron.channel import TextChunk
from cortex_neuron.markers import Channel, MarkerPair, ReasoningRouter
from cortex_neuron.text_stream import TextAssembler


class OutputChannels:
    def __init__(
        self,
        pair: MarkerPair | None,
        in_reasoning: bool,
        stops: Sequence[str],
        tool_pair: MarkerPair | None = None,
    ) -> None:
        self._router = ReasoningRouter(pair, in_reasoning, tool_pair)
        # Stop sequences end the answer; reasoning and tool calls never stop generation.
        self._assemblers: dict[Channel, TextAssembler] = {
            "text": TextAssembler(stops),
            "reasoning": TextAssembler(()),
            "tool_call": TextAssembler(()),
        }
        self._tool_block: list[str] = []
        self._tool_tokens = 0
        self.tokens = 0
        self.reasoning_tokens = 0
        self.tool_calls = 0
        self.stopped = False

    @property
    def stop_sequence(self) -> str:
        return self._assemblers["text"].matched_stop

    @property
    def in_reasoning(self) -> bool:
        return self._router.channel == "reasoning"

    def add(self, token_id: int, piece: bytes) -> list[TextChunk]:
        """One generated token (its id and its bytes) → the chunks to stream."""
        self.tokens += 1
        before = self._router.channel
        channel = self._router.route(token_id)
        if channel is None:  # a marker: never emitted
            after = self._router.channel
            if "reasoning" in (before, after):
                self.reasoning_tokens += 1
            chunks = self._flush(before) if after != before else []
            if before == "reasoning" or after == "reasoning":
                chunks.append(TextChunk("", 1, "reasoning"))
            elif after == "tool_call":
                self._tool_tokens += 1
            return chunks
        text, stopped = self._assemblers[channel].feed(piece)
        if channel == "reasoning":
            self.reasoning_tokens += 1
            return [TextChunk(text, 1, "reasoning")]
        if channel == "tool_call":
            self._tool_block.append(text)
            self._tool_tokens += 1
            return []
        self.stopped = stopped
        return [TextChunk(text, 1)]

    def finish(self) -> list[TextChunk]:
        """Whatever is still held back, once generation has ended."""
        chunks = self._flush("reasoning")
        chunks += self._flush("tool_call", complete=False)
        if not self.stopped:
            chunks += self._flush("text")
        return chunks

    def _flush(self, channel: Channel, complete: bool = True) -> list[TextChunk]:
        if channel == "text" and self.stopped:
            return []
        tail = self._assemblers[channel].finish()
        if channel == "tool_call":
            if not self._tool_block and not tail and not self._tool_tokens:
                return []
            block = "".join(self._tool_block) + tail
            # The close marker is counted with the block it ends.
            tokens = self._tool_tokens + (1 if complete else 0)
            self._tool_block, self._tool_tokens = [], 0
            self.tool_calls += complete
            return [TextChunk(block, tokens, "tool_call", complete)]
        return [TextChunk(tail, 0, channel)] if tail else []
