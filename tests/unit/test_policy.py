"""Placement and eviction policy: tables for the rules, properties for the guarantees."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cortex_scheduler.policy import (
    NeuronState,
    Resident,
    choose_evictions,
    plan_load,
    why_not_evictable,
)
from cortex_wire.messages import CatalogueEntry, Device


def entry(model: str = "new", footprint: int = 400, priority: int = 0, **extra) -> CatalogueEntry:
    return CatalogueEntry(
        id=model, n_ctx=512, footprint_mb=footprint, residency_priority=priority, **extra
    )


def neuron(node: str, capacity: int = 1000, residents=(), serves=None, devices=None) -> NeuronState:
    return NeuronState(
        node=node,
        capacity_mb=capacity,
        devices=tuple(
            devices or [Device(index=0, name="cpu", kind="cpu", total_mb=capacity, free_mb=0)]
        ),
        residents=tuple(residents),
        catalogue=tuple(serves if serves is not None else [entry()]),
    )


def ready(
    model: str, footprint: int = 300, used_at: float = 0.0, priority: int = 0, **extra
) -> Resident:
    return Resident(model, "ready", footprint, last_used_at=used_at, priority=priority, **extra)


# --- ranking ------------------------------------------------------------------------------


def test_fits_now_beats_fits_after_eviction_beats_nothing() -> None:
    full = neuron("a-full", residents=[ready("old", 900)])
    roomy = neuron("z-roomy", residents=[ready("x", 500)])
    plan = plan_load("new", [full, roomy], "lru")
    assert plan.node == "z-roomy" and plan.evictions == ()
    assert [c.node for c in plan.candidates] == ["z-roomy", "a-full"]
    assert plan.candidates[1].evictions[0].model == "old"


def test_most_free_wins_then_name_breaks_ties() -> None:
    plan = plan_load("new", [neuron("b", 2000), neuron("c", 3000), neuron("a", 3000)], "lru")
    assert plan.node == "a"
    assert [c.node for c in plan.candidates] == ["a", "c", "b"]


def test_forced_node_is_the_only_candidate() -> None:
    plan = plan_load("new", [neuron("a", 5000), neuron("b", 1000)], "lru", node="b")
    assert plan.node == "b"
    assert (
        plan_load("new", [neuron("a")], "lru", node="nope").rejected["nope"]
        == "no such live neuron"
    )


# --- feasibility --------------------------------------------------------------------------


def test_pinned_on_affinity() -> None:
    serves = [entry(pinned_on=["b"])]
    plan = plan_load(
        "new", [neuron("a", 9000, serves=serves), neuron("b", 1000, serves=serves)], "lru"
    )
    assert plan.node == "b"
    assert plan.rejected == {"a": "pinned_on allows only b"}


def test_device_count_and_per_device_floor() -> None:
    gpus = [
        Device(index=i, name="gpu", kind="cuda", total_mb=t, free_mb=t)
        for i, t in enumerate((24000, 8000))
    ]
    serves = [entry(min_devices=2, min_device_vram_mb=16000)]
    plan = plan_load("new", [neuron("a", 32000, serves=serves, devices=gpus)], "lru")
    assert plan.node is None
    assert plan.rejected["a"] == "needs 2 device(s) with >= 16000 MiB, has 1"


def test_footprint_larger_than_capacity_is_infeasible() -> None:
    plan = plan_load("new", [neuron("a", 300)], "lru")
    assert plan.node is None
    assert "needs 400 MiB, capacity is 300 MiB" in plan.reason


def test_neuron_that_does_not_serve_the_model_is_rejected() -> None:
    plan = plan_load("new", [neuron("a", serves=[entry("other")])], "lru")
    assert plan.rejected == {"a": "does not serve this model"}


# --- eviction -----------------------------------------------------------------------------


def test_lru_evicts_least_recently_used_and_only_as_much_as_needed() -> None:
    n = neuron(
        "a",
        residents=[ready("newest", 300, 30), ready("oldest", 300, 10), ready("middle", 300, 20)],
    )
    evictions = choose_evictions(n, 500, 0, "lru")  # 100 MiB free: 400 short
    assert evictions is not None
    assert [e.model for e in evictions] == ["oldest", "middle"]
    assert [e.model for e in choose_evictions(n, 200, 0, "lru") or ()] == ["oldest"]


def test_priority_evicts_lowest_class_first_and_never_a_higher_one() -> None:
    n = neuron(
        "a",
        residents=[
            ready("high", 300, 1, priority=5),
            ready("low", 300, 99, priority=1),
            ready("mid", 300, 2, priority=3),
        ],
    )
    assert [e.model for e in choose_evictions(n, 500, 3, "priority") or ()] == ["low", "mid"]
    # A priority-1 model may displace only priority <= 1: not enough here.
    assert choose_evictions(n, 500, 1, "priority") is None
    plan = plan_load(
        "new",
        [neuron("a", residents=n.residents, serves=[entry(footprint=500, priority=1)])],
        "priority",
    )
    assert plan.node is None
    assert "high (priority 5 > 1)" in plan.rejected["a"]


def test_equal_priority_may_displace_each_other() -> None:
    n = neuron("a", residents=[ready("peer", 900, priority=2)])
    assert [e.model for e in choose_evictions(n, 400, 2, "priority") or ()] == ["peer"]


def test_never_evicts_pinned_loading_or_busy() -> None:
    blocked = [
        ready("pinned", pinned=True),
        Resident("loading", "loading", 300),
        ready("serving", busy=1),
        ready("queued", queued=2),
    ]
    reasons = [why_not_evictable(r, 0, "lru") for r in blocked]
    assert reasons == [
        "pinned",
        "loading",
        "serving 1 and queueing 0 requests",
        "serving 0 and queueing 2 requests",
    ]
    plan = plan_load("new", [neuron("a", 1300, residents=blocked)], "lru")
    assert plan.node is None
    assert "cannot evict pinned (pinned), loading (loading)" in plan.rejected["a"]


# --- properties ---------------------------------------------------------------------------

residents_st = st.lists(
    st.builds(
        Resident,
        model=st.sampled_from(["m1", "m2", "m3", "m4", "m5", "m6"]),
        state=st.sampled_from(["ready", "ready", "ready", "loading", "unloading"]),
        footprint_mb=st.integers(1, 600),
        busy=st.integers(0, 1),
        queued=st.integers(0, 1),
        last_used_at=st.floats(0, 100),
        priority=st.integers(0, 3),
        pinned=st.booleans(),
    ),
    max_size=6,
    unique_by=lambda r: r.model,
)
neurons_st = st.lists(
    st.builds(
        lambda name, capacity, residents, footprint, priority: neuron(
            name, capacity, residents, serves=[entry(footprint=footprint, priority=priority)]
        ),
        name=st.sampled_from(["n1", "n2", "n3", "n4"]),
        capacity=st.integers(100, 2000),
        residents=residents_st,
        footprint=st.integers(1, 1500),
        priority=st.integers(0, 3),
    ),
    max_size=4,
    unique_by=lambda n: n.node,
)


@settings(max_examples=150, deadline=None)
@given(neurons_st, st.sampled_from(["lru", "priority"]))
def test_plans_never_evict_the_protected_and_always_fit(neurons, strategy) -> None:
    plan = plan_load("new", neurons, strategy)
    if plan.node is None:
        assert plan.evictions == ()
        return
    target = next(n for n in neurons if n.node == plan.node)
    incoming = target.entry("new")
    assert incoming is not None
    by_model = {r.model: r for r in target.residents}
    for eviction in plan.evictions:
        assert eviction.node == plan.node
        victim = by_model[eviction.model]
        assert (
            not victim.pinned and victim.state == "ready" and not victim.busy and not victim.queued
        )
        if strategy == "priority":
            assert victim.priority <= incoming.residency_priority
    freed = sum(by_model[e.model].footprint_mb for e in plan.evictions)
    assert target.free_mb + freed >= incoming.footprint_mb
    # Only as much as needed: without the last eviction it would not fit.
    if plan.evictions:
        last = by_model[plan.evictions[-1].model].footprint_mb
        assert target.free_mb + freed - last < incoming.footprint_mb


@settings(max_examples=100, deadline=None)
@given(neurons_st, st.sampled_from(["lru", "priority"]))
def test_plans_are_deterministic_whatever_the_order_of_neurons(neurons, strategy) -> None:
    assert plan_load("new", neurons, strategy) == plan_load(
        "new", list(reversed(neurons)), strategy
    )
