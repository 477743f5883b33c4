"""Where a cold model should load (pure: a snapshot of the fleet in, a decision out).

This is the walking skeleton's policy: among live neurons that serve the model and meet its
device constraints, prefer one where it fits in free memory now, then the one with most
free memory. Eviction and pins build on this in the scheduler issue.
"""

from __future__ import annotations

from dataclasses import dataclass

from cortex_core.fleet import NeuronView
from cortex_wire.messages import CatalogueEntry


@dataclass(frozen=True)
class Placement:
    node: str | None
    reason: str


def free_mb(view: NeuronView) -> int:
    return sum(d.free_mb for d in view.heartbeat.devices)


def _entry(view: NeuronView, model_id: str) -> CatalogueEntry | None:
    return next((e for e in view.heartbeat.catalogue if e.id == model_id), None)


def _constraint_problem(view: NeuronView, entry: CatalogueEntry) -> str | None:
    devices = view.heartbeat.devices
    if entry.pinned_on and view.node not in entry.pinned_on:
        return "not in pinned_on"
    eligible = [d for d in devices if d.total_mb >= entry.min_device_vram_mb]
    if len(eligible) < entry.min_devices:
        return f"needs {entry.min_devices} device(s) with >= {entry.min_device_vram_mb} MiB"
    if entry.footprint_mb > sum(d.total_mb for d in devices):
        return f"needs {entry.footprint_mb} MiB, has {sum(d.total_mb for d in devices)} MiB in all"
    return None


def place(model_id: str, neurons: list[NeuronView]) -> Placement:
    candidates: list[tuple[bool, int, str]] = []
    reasons: list[str] = []
    for view in neurons:
        entry = _entry(view, model_id)
        if entry is None:
            continue
        problem = _constraint_problem(view, entry)
        if problem:
            reasons.append(f"{view.node}: {problem}")
            continue
        free = free_mb(view)
        candidates.append((entry.footprint_mb <= free, free, view.node))
    if not candidates:
        detail = "; ".join(reasons) or "no live neuron serves it"
        return Placement(None, f"no neuron can hold model {model_id!r} ({detail})")
    fits_now, free, node = max(candidates, key=lambda c: (c[0], c[1], _reverse(c[2])))
    why = "fits in free memory" if fits_now else "most free memory (may not fit yet)"
    return Placement(node, f"{why}: {free} MiB free")


def _reverse(name: str) -> tuple[int, ...]:
    """Sort key that makes max() prefer the lexically first name on ties."""
    return tuple(-ord(c) for c in name)
