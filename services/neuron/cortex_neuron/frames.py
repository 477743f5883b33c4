"""How a stream's events become frames on the bus, and how often they go (pure)."""

from __future__ import annotations

from cortex_neuron.channel import CallChunk, Event, PromptScored, TextChunk
from cortex_wire.messages import Delta, ReasoningDelta, ToolCallFrame

# Streams per neuron that one frame interval serves; beyond, the interval stretches.
STREAMS_PER_INTERVAL = 16
MAX_INTERVAL_STRETCH = 4
# Under load a frame waits for about this many of its stream's tokens, however slow the
# steps, but never longer than MAX_PAUSE_S.
TOKENS_PER_FRAME = 2
MAX_PAUSE_S = 0.25


def frame_pause(interval: float, streams: int, stream_rate: float = 0.0) -> float:
    """How long a stream waits before its next frame (pure): nothing for a lone stream, or
    with pacing off (`interval` 0); under load `interval`, longer as streams pile up (up
    to 4x), so the messages a neuron sends per second stop growing with its stream count;
    and at least the time of two of the stream's tokens (`stream_rate`: one stream's decode
    tokens/s on this model, 0 when not known yet), so that where steps are slower than the
    interval (a CPU host) a frame still carries two tokens rather than one."""
    if streams <= 1 or interval <= 0:
        return 0.0
    stretch = min(MAX_INTERVAL_STRETCH, -(-streams // STREAMS_PER_INTERVAL))
    pause = interval * stretch
    if stream_rate > 0:
        pause = max(pause, min(TOKENS_PER_FRAME / stream_rate, MAX_PAUSE_S))
    return pause


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
