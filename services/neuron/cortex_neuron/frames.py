"""How a stream's events become frames on the bus, and how often they go (pure)."""

from __future__ import annotations

from cortex_neuron.channel import CallChunk, Event, PromptScored, TextChunk
from cortex_wire.messages import Delta, ReasoningDelta, ToolCallFrame

# Streams per neuron that one frame interval serves; beyond, the interval stretches.
STREAMS_PER_INTERVAL = 16
MAX_INTERVAL_STRETCH = 4


def frame_pause(interval: float, streams: int) -> float:
    """How long a stream waits before its next frame (pure): nothing for a lone stream;
    `interval` under load; longer as streams pile up (up to 4x), so the messages a neuron
    sends per second stop growing with its stream count."""
    if streams <= 1:
        return 0.0
    stretch = min(MAX_INTERVAL_STRETCH, -(-streams // STREAMS_PER_INTERVAL))
    return interval * stretch


def coalesce(
    events: list[Event], first_seq: int, calls: list[int] | None = None
) -> list[Delta | ReasoningDelta | ToolCallFrame]:
    """One frame per run of same-channel text chunks (and per run of one call's chunks),
    numbered from `first_seq`, in order. `calls[0]` counts the request's ended calls: the
    index of the call being streamed."""
    calls = calls if calls is not None else [0]
    frames: list[Delta | ReasoningDelta | ToolCallFrame] = []
    for event in events:
        seq = first_seq + len(frames)
        if isinstance(event, CallChunk):
            last = frames[-1] if frames else None
            if (
                not event.first
                and isinstance(last, ToolCallFrame)
                and last.index == calls[0]
                and not last.complete
            ):
                last.arguments += event.arguments
                last.tokens += event.tokens
                last.complete = event.last
            else:
                frames.append(
                    ToolCallFrame(
                        seq=seq,
                        index=calls[0],
                        name=event.name if event.first else "",
                        arguments=event.arguments,
                        tokens=event.tokens,
                        complete=event.last,
                    )
                )
            calls[0] += event.last
            continue
        if isinstance(event, PromptScored):
            frames.append(Delta(seq=seq, prompt_logprobs=list(event.logprobs)))
            continue
        if not isinstance(event, TextChunk):
            continue
        last = frames[-1] if frames else None
        if event.kind == "reasoning":
            if isinstance(last, ReasoningDelta):
                last.text += event.text
                last.tokens += event.tokens
            else:
                frames.append(ReasoningDelta(seq=seq, text=event.text, tokens=event.tokens))
        elif isinstance(last, Delta) and not last.prompt_logprobs:
            last.text += event.text
            last.tokens += event.tokens
            last.logprobs += event.logprobs
        else:
            frames.append(
                Delta(seq=seq, text=event.text, tokens=event.tokens, logprobs=[*event.logprobs])
            )
    return frames
