"""The fleet as heartbeats describe it (pure: callers pass `now`).

Gateway and scheduler each keep one FleetState fed from `cortex.neuron.*.heartbeat`. A
neuron whose heartbeats stop for MISSED_BEATS intervals is gone, and so are its models.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import msgspec

from cortex_wire.messages import CatalogueEntry, Heartbeat, LoadedModel

MISSED_BEATS = 3
# A neuron that has missed its heartbeats for fewer intervals than this is late, not gone:
# under load a neuron sends them, or a gateway reads them, seconds late. Its ready models
# are still tried before a cold load is ordered (a dead one's "no responders" is at once).
LATE_BEATS = 10


@dataclass
class NeuronView:
    heartbeat: Heartbeat
    received_at: float

    @property
    def node(self) -> str:
        return self.heartbeat.node

    def alive(self, now: float, beats: int = MISSED_BEATS) -> bool:
        return now - self.received_at <= beats * self.heartbeat.interval_s

    def model(self, model_id: str) -> LoadedModel | None:
        return next((m for m in self.heartbeat.models if m.id == model_id), None)


@dataclass
class CatalogueView:
    """One model as the whole fleet sees it."""

    entry: CatalogueEntry
    served_by: list[str] = field(default_factory=list)
    states: dict[str, LoadedModel] = field(default_factory=dict)


@dataclass
class FleetState:
    neurons: dict[str, NeuronView] = field(default_factory=dict)
    # Empty means every neuron is admitted.
    allowed: Collection[str] = ()

    def admits(self, node: str) -> bool:
        return not self.allowed or node in self.allowed

    def observe(self, heartbeat: Heartbeat, now: float) -> bool:
        """Record a heartbeat; False (and nothing recorded) for a neuron not allowed."""
        if not self.admits(heartbeat.node):
            return False
        self.neurons[heartbeat.node] = NeuronView(heartbeat, now)
        return True

    def heard_from(self, node: str, at: float) -> None:
        """A message of `node`'s other than its heartbeat (a frame of a stream it serves)
        shows it alive as a heartbeat would: a neuron so busy that its heartbeats come, or
        are read, seconds late is not gone while it streams. What it holds stays as its
        last heartbeat said."""
        view = self.neurons.get(node)
        if view is not None and at > view.received_at:
            view.received_at = at

    def expire(self, now: float) -> list[str]:
        """Forget neurons that missed their heartbeats; return their names."""
        gone = [name for name, view in self.neurons.items() if not view.alive(now)]
        for name in gone:
            del self.neurons[name]
        return gone

    def live(self, now: float, beats: int = MISSED_BEATS) -> list[NeuronView]:
        """The neurons heard from within `beats` heartbeat intervals."""
        alive = (v for v in self.neurons.values() if v.alive(now, beats))
        return sorted(alive, key=lambda v: v.node)

    def aliases(self, now: float) -> dict[str, str]:
        merged: dict[str, str] = {}
        for view in self.live(now):
            for alias, target in view.heartbeat.aliases.items():
                merged.setdefault(alias, target)
        return merged

    def resolve(self, name: str, now: float) -> str:
        """The model id `name` refers to: a model of that id wins over an alias of that name
        (aliases are per neuron, so two neurons' catalogues may collide), and an alias over
        a pattern (see `resolve_alias`)."""
        if name in self.catalogue(now):
            return name
        return resolve_alias(name, self.aliases(now))

    def catalogue(self, now: float) -> dict[str, CatalogueView]:
        models: dict[str, CatalogueView] = {}
        for view in self.live(now):
            for entry in view.heartbeat.catalogue:
                merged = models.setdefault(entry.id, CatalogueView(entry=entry))
                merged.served_by.append(view.node)
            for loaded in view.heartbeat.models:
                if loaded.id in models:
                    models[loaded.id].states[view.node] = loaded
        return models

    def ready_replicas(
        self, model_id: str, now: float, beats: int = MISSED_BEATS
    ) -> list[tuple[NeuronView, LoadedModel]]:
        replicas = []
        for view in self.live(now, beats):
            loaded = view.model(model_id)
            if loaded is not None and loaded.state == "ready":
                replicas.append((view, loaded))
        return replicas


Replica = tuple[NeuronView, LoadedModel]
# A replica holding a request's prefix is taken while its load (requests per slot) is at
# most this many times the least loaded replica's, plus half a slot's worth.
PREFIX_LOAD_FACTOR = 1.5
PREFIX_LOAD_SLACK = 0.5


def _load(item: Replica) -> float:
    model = item[1]
    return (model.busy + model.queued) / max(model.slots, 1)


def counting_own(replicas: list[Replica], own: Mapping[str, int]) -> list[Replica]:
    """The replicas, each loaded with at least the requests this gateway has in flight on
    its node (`own`, by node): heartbeats lag by up to an interval, and a burst routed
    between two of them would otherwise all go to the replica that looked idle."""
    counted = []
    for view, loaded in replicas:
        mine = own.get(view.node, 0)
        if mine > loaded.busy + loaded.queued:
            loaded = msgspec.structs.replace(loaded, busy=mine - loaded.queued)
        counted.append((view, loaded))
    return counted


def least_busy(replicas: list[Replica]) -> str | None:
    """The node whose replica has the most free capacity; ties go to the lexically first."""
    if not replicas:
        return None
    return min(replicas, key=lambda item: (_load(item), item[0].node))[0].node


def held_prefix(
    model: LoadedModel, digests: list[str], node: str = "", recent: Mapping[str, str] = {}
) -> int:
    """How many of a request's message-prefix digests (shortest first) the replica's
    cache holds: the longest one it lists, or that `recent` (digest → node: where this
    gateway sent a conversation since) says it served, counted from 1 (0: none)."""
    listed = set(model.prefixes)
    return next(
        (i + 1 for i in range(len(digests) - 1, -1, -1)
         if digests[i] in listed or recent.get(digests[i]) == node),
        0,
    )  # fmt: skip


def best_replica(
    replicas: list[Replica], digests: list[str], recent: Mapping[str, str] = {}
) -> str | None:
    """The replica whose cache holds the longest prefix of the request, unless it is much
    busier than the least busy one (then, and with no prefix held, the least busy)."""
    if not replicas:
        return None
    limit = PREFIX_LOAD_FACTOR * min(_load(r) for r in replicas) + PREFIX_LOAD_SLACK
    holders = [
        (held_prefix(r[1], digests, r[0].node, recent), r) for r in replicas if _load(r) <= limit
    ]
    holders = [(held, r) for held, r in holders if held > 0]
    if not holders:
        return least_busy(replicas)
    return min(holders, key=lambda h: (-h[0], _load(h[1]), h[1][0].node))[1][0].node


PATTERN_CHARS = frozenset("*?[")


def is_pattern(alias: str) -> bool:
    return not PATTERN_CHARS.isdisjoint(alias)


def resolve_alias(name: str, aliases: dict[str, str]) -> str:
    """The target of `name`: an exact alias, else the most specific matching pattern (the
    longest; "claude-haiku-*" before "claude-*"), else `name` itself. Patterns are
    shell-style (fnmatch, case-sensitive), so clients that ask for their own model ids
    (Claude Code: claude-sonnet-…, claude-haiku-…) reach the models an operator maps."""
    if name in aliases:
        return aliases[name]
    patterns = sorted((a for a in aliases if is_pattern(a)), key=lambda a: (-len(a), a))
    return next((aliases[p] for p in patterns if fnmatch.fnmatchcase(name, p)), name)
