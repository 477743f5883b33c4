"""Placement and eviction (pure: a snapshot of the fleet in, a plan out; `now` is never read).

Feasibility: the neuron serves the model, `pinned_on` allows it, it has `min_devices`
devices of at least `min_device_vram_mb`, and the model's footprint fits its capacity.
Ranking: fits in free memory now, then fits after eviction; within each, most free memory
first; ties go to the lexically first node name. Eviction (`lru` or `priority`) never
touches a model that is pinned, not ready (loading, unloading), or serving or queueing
requests, and frees only as much as the incoming model needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from cortex_wire.messages import CatalogueEntry, Device

Strategy = Literal["lru", "priority"]


@dataclass(frozen=True)
class Resident:
    """A model on a neuron, as policy sees it."""

    model: str
    state: str
    footprint_mb: int
    busy: int = 0
    queued: int = 0
    last_used_at: float = 0.0
    priority: int = 0
    pinned: bool = False


@dataclass(frozen=True)
class NeuronState:
    node: str
    capacity_mb: int
    devices: tuple[Device, ...] = ()
    residents: tuple[Resident, ...] = ()
    catalogue: tuple[CatalogueEntry, ...] = ()

    # Snapshots are immutable, so what is derived from them is computed once.
    @cached_property
    def used_mb(self) -> int:
        return sum(r.footprint_mb for r in self.residents if r.state != "failed")

    @cached_property
    def free_mb(self) -> int:
        return self.capacity_mb - self.used_mb

    @cached_property
    def _entries(self) -> dict[str, CatalogueEntry]:
        return {e.id: e for e in self.catalogue}

    def entry(self, model: str) -> CatalogueEntry | None:
        return self._entries.get(model)

    def resident(self, model: str) -> Resident | None:
        return next((r for r in self.residents if r.model == model), None)


@dataclass(frozen=True)
class Eviction:
    node: str
    model: str
    resident: Resident
    strategy: Strategy

    @property
    def reason(self) -> str:
        # Worded on demand: a plan weighs many evictions and explains few.
        resident = self.resident
        return (
            f"{self.strategy}: frees {resident.footprint_mb} MiB"
            + (f", priority {resident.priority}" if self.strategy == "priority" else "")
            + f", last used at {resident.last_used_at:.0f}"
        )


@dataclass(frozen=True)
class Candidate:
    node: str
    fits_now: bool
    free_mb: int
    evictions: tuple[Eviction, ...] = ()


@dataclass(frozen=True)
class Plan:
    model: str
    node: str | None
    reason: str
    evictions: tuple[Eviction, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    rejected: dict[str, str] = field(default_factory=dict)


def why_not_evictable(resident: Resident, incoming_priority: int, strategy: Strategy) -> str | None:
    """None if `resident` may be evicted for a model of `incoming_priority`; else why not."""
    if resident.pinned:
        return "pinned"
    if resident.state != "ready":
        return resident.state
    if resident.busy or resident.queued:
        return f"serving {resident.busy} and queueing {resident.queued} requests"
    if strategy == "priority" and resident.priority > incoming_priority:
        return f"priority {resident.priority} > {incoming_priority}"
    return None


def evictable(resident: Resident, incoming_priority: int, strategy: Strategy) -> bool:
    """why_not_evictable(...) is None, without wording the reason."""
    return (
        not resident.pinned
        and resident.state == "ready"
        and not (resident.busy or resident.queued)
        and not (strategy == "priority" and resident.priority > incoming_priority)
    )


def eviction_order(residents: Iterable[Resident], strategy: Strategy) -> list[Resident]:
    if strategy == "priority":
        return sorted(residents, key=lambda r: (r.priority, r.last_used_at, r.model))
    return sorted(residents, key=lambda r: (r.last_used_at, r.model))


def choose_evictions(
    neuron: NeuronState, need_mb: int, incoming_priority: int, strategy: Strategy
) -> tuple[Eviction, ...] | None:
    """The fewest evictions, in policy order, that free `need_mb`; None if impossible."""
    shortfall = need_mb - neuron.free_mb
    if shortfall <= 0:
        return ()
    allowed = [r for r in neuron.residents if evictable(r, incoming_priority, strategy)]
    chosen: list[Eviction] = []
    for resident in eviction_order(allowed, strategy):
        if shortfall <= 0:
            break
        chosen.append(Eviction(neuron.node, resident.model, resident, strategy))
        shortfall -= resident.footprint_mb
    return tuple(chosen) if shortfall <= 0 else None


def infeasibility(neuron: NeuronState, entry: CatalogueEntry) -> str | None:
    """Why `entry` can never load on `neuron` (whatever is evicted), or None."""
    if entry.pinned_on and neuron.node not in entry.pinned_on:
        return f"pinned_on allows only {', '.join(entry.pinned_on)}"
    big_enough = [d for d in neuron.devices if d.total_mb >= entry.min_device_vram_mb]
    if len(big_enough) < entry.min_devices:
        return (
            f"needs {entry.min_devices} device(s) with >= {entry.min_device_vram_mb} MiB, "
            f"has {len(big_enough)}"
        )
    if entry.footprint_mb > neuron.capacity_mb:
        return f"needs {entry.footprint_mb} MiB, capacity is {neuron.capacity_mb} MiB"
    return None


def _rank_key(candidate: Candidate) -> tuple[int, int, str]:
    return (0 if candidate.fits_now else 1, -candidate.free_mb, candidate.node)


def plan_load(
    model: str, neurons: Sequence[NeuronState], strategy: Strategy, node: str | None = None
) -> Plan:
    """Where `model` should load and what must be evicted first; `node` forces the choice."""
    candidates: list[Candidate] = []
    rejected: dict[str, str] = {}
    for neuron in sorted(neurons, key=lambda n: n.node):
        if node is not None and neuron.node != node:
            continue
        entry = neuron.entry(model)
        if entry is None:
            rejected[neuron.node] = "does not serve this model"
            continue
        problem = infeasibility(neuron, entry)
        if problem:
            rejected[neuron.node] = problem
            continue
        evictions = choose_evictions(neuron, entry.footprint_mb, entry.residency_priority, strategy)
        if evictions is None:
            blocked = [
                f"{r.model} ({why})"
                for r in neuron.residents
                if (why := why_not_evictable(r, entry.residency_priority, strategy))
            ]
            rejected[neuron.node] = (
                f"needs {entry.footprint_mb} MiB, {neuron.free_mb} MiB free, and cannot evict "
                + (", ".join(blocked) or "enough")
            )
            continue
        candidates.append(Candidate(neuron.node, not evictions, neuron.free_mb, evictions))
    candidates.sort(key=_rank_key)
    if node is not None and node not in {n.node for n in neurons}:
        rejected[node] = "no such live neuron"
    if not candidates:
        detail = "; ".join(f"{n}: {why}" for n, why in rejected.items()) or "no live neuron"
        return Plan(model, None, f"no neuron can hold {model!r} ({detail})", rejected=rejected)
    best = candidates[0]
    reason = (
        f"fits in {best.free_mb} MiB free"
        if best.fits_now
        else f"fits after evicting {', '.join(e.model for e in best.evictions)}"
    )
    return Plan(model, best.node, reason, best.evictions, tuple(candidates), rejected)
