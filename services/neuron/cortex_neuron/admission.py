"""Admission on a neuron (pure): how many requests of a model may run and wait, and the
refusal, with its reason, of one beyond that."""

from __future__ import annotations

from cortex_core.config import ModelProfile
from cortex_wire.messages import WireError
from cortex_wire.outcomes import Code


def limits(profile: ModelProfile, queue_depth: int) -> tuple[int, int]:
    """(requests generating at once, requests waiting behind them) for a model;
    `queue_depth` is the neuron's default wait."""
    running = profile.max_in_flight or profile.parallel
    waiting = profile.max_queue_depth if profile.max_queue_depth >= 0 else queue_depth
    return running, waiting


def refusal(profile: ModelProfile, in_flight: int, node: str, queue_depth: int) -> WireError | None:
    """Refuse at once (with a reason) what would wait beyond the model's limits."""
    running, waiting = limits(profile, queue_depth)
    if in_flight < running + waiting:
        return None
    message = (
        f"model {profile.id!r} on {node!r} is at capacity: {min(in_flight, running)} "
        f"running, {max(in_flight - running, 0)} queued (limits {running} and {waiting})"
    )
    return WireError(code=Code.OVERLOADED, message=message)
