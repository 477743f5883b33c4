"""What the scheduler refuses an operator (or a cold request), and why, in words (pure).

An unknown model is not a shortage: when no live neuron's catalogue has it at all, the
answer is model_not_found (the gateway's 404), not no_capacity. A pinned model is not
unloaded behind its pin's back: the pin would load it again a tick later.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cortex_scheduler.policy import NeuronState
from cortex_scheduler.snapshot import is_pinned
from cortex_wire.messages import Pin, WireError
from cortex_wire.outcomes import Code


def unknown_model(model: str, neurons: Sequence[NeuronState]) -> WireError | None:
    """model_not_found when neurons are live and none serves `model`; with none live there
    is no telling (the caller's own answer stands)."""
    if not neurons or any(n.entry(model) is not None for n in neurons):
        return None
    nodes = ", ".join(sorted(n.node for n in neurons))
    message = f"unknown model {model!r}: no live neuron serves it (asked {nodes})"
    return WireError(code=Code.MODEL_NOT_FOUND, message=message)


def unknown_node(node: str, neurons: Sequence[NeuronState]) -> WireError | None:
    """not_found when an operator names a neuron (`--node`) that is not in the live fleet;
    with none live there is no telling."""
    if not node or not neurons or any(n.node == node for n in neurons):
        return None
    nodes = ", ".join(sorted(n.node for n in neurons))
    return WireError(code=Code.NOT_FOUND, message=f"no live neuron is named {node!r} ({nodes})")


def pinned_against_unload(
    model: str, nodes: Iterable[str], pins: Iterable[Pin]
) -> WireError | None:
    """model_pinned when a pin holds `model` on any of `nodes` (a pin without a node holds
    it wherever it is)."""
    pins = list(pins)
    held = next((n for n in nodes if is_pinned(model, n, pins)), None)
    if held is None:
        return None
    pin = next(p for p in pins if p.model == model and p.node in ("", held))
    where = pin.node or "any neuron"
    message = f"{model!r} is pinned on {where}; unpin it first"
    return WireError(code=Code.MODEL_PINNED, message=message)


def not_pinned(error: WireError) -> WireError:
    """A pin's refusal: the reason the model could not be placed, saying nothing was pinned."""
    return WireError(code=error.code, message=f"not pinned: {error.message}")
