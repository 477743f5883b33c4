"""The policy's view of the fleet: heartbeats, overlaid with run-time pins and with loads
this scheduler has commanded that no heartbeat shows yet (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cortex_core.fleet import NeuronView
from cortex_scheduler.policy import NeuronState, Resident
from cortex_wire.messages import Pin


def is_pinned(model: str, node: str, pins: Iterable[Pin]) -> bool:
    return any(p.model == model and p.node in ("", node) for p in pins)


def neuron_states(
    views: Iterable[NeuronView],
    pins: Iterable[Pin],
    pending: Mapping[str, Mapping[str, int]],
) -> list[NeuronState]:
    """`pending`: node → {model: footprint_mb} for loads commanded but maybe not yet seen."""
    pins = list(pins)
    states = []
    for view in views:
        heartbeat = view.heartbeat
        node = heartbeat.node
        priority = {e.id: e.residency_priority for e in heartbeat.catalogue}
        residents = [
            Resident(
                model=m.id,
                state=m.state,
                footprint_mb=m.footprint_mb,
                busy=m.busy,
                queued=m.queued,
                last_used_at=m.last_used_at,
                priority=priority.get(m.id, 0),
                pinned=is_pinned(m.id, node, pins),
            )
            for m in heartbeat.models
        ]
        listed = {m.id for m in heartbeat.models}
        residents += [
            Resident(
                model=model,
                state="loading",
                footprint_mb=footprint,
                priority=priority.get(model, 0),
            )
            for model, footprint in pending.get(node, {}).items()
            if model not in listed
        ]
        states.append(
            NeuronState(
                node=node,
                capacity_mb=heartbeat.memory_budget_mb,
                devices=tuple(heartbeat.devices),
                residents=tuple(residents),
                catalogue=tuple(heartbeat.catalogue),
            )
        )
    return states
