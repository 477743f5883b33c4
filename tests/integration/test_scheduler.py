"""The scheduler with several real neurons on a real nats-server: cold loads, LRU and
priority eviction, pins that survive a restart, single-flight loads, failure back-off,
defrag, and neurons leaving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.js.errors import NoKeysError

from cortex_wire import codec, subjects
from cortex_wire.messages import (
    ControlReply,
    EnsureModel,
    EnsureReply,
    Explanation,
    FleetStatus,
    ModelRef,
    SchedulerReply,
    UnloadModel,
)
from tests.support.fleet import Fleet, running_fleet
from tests.support.tiny_gguf import TinyModel


def model(id: str, gguf: TinyModel, vram_mb: int = 400, **extra) -> dict:
    return {"id": id, "path": str(gguf.path), "n_ctx": 256, "vram_mb": vram_mb, **extra}


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    async with running_fleet(tmp_path) as running:
        yield running


async def test_cold_load_goes_where_it_fits_and_every_decision_is_an_event(
    fleet: Fleet, hello_model
) -> None:
    models = [model("a", hello_model)]
    await fleet.start_neuron("small", 500, models)
    await fleet.start_neuron("large", 2000, models)
    await fleet.start_scheduler()
    plan: Explanation = await fleet.ask(subjects.SCHED_EXPLAIN, ModelRef(model="a"), Explanation)
    assert (plan.node, plan.reason) == ("large", "fits in 2000 MiB free")
    assert [c.node for c in plan.candidates] == ["large", "small"]
    assert fleet.scheduler_events("placed") == []  # explaining did nothing

    reply = await fleet.ensure("a")
    assert (reply.ok, reply.node) == (True, "large")
    placed = fleet.scheduler_events("placed", "a")
    assert [(e.node, e.reason) for e in placed] == [("large", "fits in 2000 MiB free")]
    assert [e.node for e in fleet.scheduler_events("loaded", "a")] == ["large"]
    assert [e.node for e in fleet.model_events("a", "ready")] == ["large"]


async def test_lru_evicts_the_least_recently_used_only_as_much_as_needed(
    fleet: Fleet, hello_model
) -> None:
    await fleet.start_neuron("n1", 1000, [model(m, hello_model) for m in ("a", "b", "c")])
    await fleet.start_scheduler()
    for name in ("a", "b"):
        assert (await fleet.ensure(name)).ok
    reply = await fleet.ensure("c")
    assert reply.ok
    evicted = fleet.scheduler_events("evicted")
    assert [e.model for e in evicted] == ["a"]
    assert "lru: frees 400 MiB" in evicted[0].reason
    status: FleetStatus = await fleet.ask(subjects.SCHED_STATUS, ModelRef(model=""), FleetStatus)
    assert sorted(m.id for m in status.neurons[0].models) == ["b", "c"]


async def test_priority_classes_protect_higher_residents(fleet: Fleet, hello_model) -> None:
    models = [
        model("vip", hello_model, residency_priority=5),
        model("low", hello_model, residency_priority=1),
        model("peer", hello_model, residency_priority=1),
        model("lowest", hello_model, vram_mb=700, residency_priority=0),
    ]
    await fleet.start_neuron("n1", 1000, models)
    await fleet.start_scheduler(eviction={"strategy": "priority"})
    assert (await fleet.ensure("vip")).ok
    assert (await fleet.ensure("low")).ok
    # vip is older (LRU would pick it); priority evicts the equal-priority peer's class instead.
    assert (await fleet.ensure("peer")).ok
    assert [e.model for e in fleet.scheduler_events("evicted")] == ["low"]
    refused = await fleet.ensure("lowest")
    assert not refused.ok and refused.error is not None and refused.error.code == "no_capacity"
    assert "vip (priority 5 > 0)" in refused.error.message


async def test_concurrent_cold_requests_cause_exactly_one_load(fleet: Fleet, hello_model) -> None:
    await fleet.start_neuron("n1", 1000, [model("a", hello_model)])
    await fleet.start_neuron("n2", 1000, [model("a", hello_model)])
    await fleet.start_scheduler()
    replies = await asyncio.gather(*(fleet.ensure("a") for _ in range(8)))
    assert all(r.ok for r in replies)
    assert len({r.node for r in replies}) == 1
    assert len(fleet.model_events("a", "loading")) == 1
    assert len(fleet.scheduler_events("placed", "a")) == 1


async def test_failed_load_is_reported_and_not_retried_in_a_loop(
    fleet: Fleet, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF but not really")
    await fleet.start_neuron("n1", 1000, [{"id": "broken", "path": str(broken), "vram_mb": 100}])
    await fleet.start_scheduler()
    first = await fleet.ensure("broken")
    assert not first.ok and first.error is not None and first.error.code == "load_failed"
    assert "broken.gguf" in first.error.message
    again = await asyncio.gather(*(fleet.ensure("broken") for _ in range(5)))
    assert all(r.error == first.error for r in again)
    assert len(fleet.model_events("broken", "loading")) == 1
    assert len(fleet.scheduler_events("load_failed", "broken")) == 1


async def test_pins_survive_a_scheduler_restart_and_are_never_evicted(
    fleet: Fleet, hello_model
) -> None:
    await fleet.start_neuron(
        "n1", 1000, [model(m, hello_model, vram_mb=600) for m in ("pinned", "other")]
    )
    first = await fleet.start_scheduler("first")
    pinned: SchedulerReply = await fleet.ask(
        subjects.SCHED_PIN, ModelRef(model="pinned", node="n1"), SchedulerReply
    )
    assert pinned.ok, pinned.error
    await fleet.wait_for(
        lambda e: getattr(e, "model", "") == "pinned" and getattr(e, "state", "") == "ready"
    )
    await first.shutdown()

    await fleet.start_scheduler("second")
    refused = await fleet.ensure("other")
    assert not refused.ok and refused.error is not None
    assert "pinned (pinned)" in refused.error.message
    status: FleetStatus = await fleet.ask(subjects.SCHED_STATUS, ModelRef(model=""), FleetStatus)
    assert [(p.model, p.node) for p in status.pins] == [("pinned", "n1")]

    # Unloaded behind the scheduler's back (say, by an operator on the host): it comes back.
    raw = await fleet.nc.request(
        subjects.control("n1"), codec.encode(UnloadModel(model="pinned")), timeout=10
    )
    assert codec.decode(raw.data, ControlReply).ok
    await fleet.wait_for(lambda e: getattr(e, "kind", "") == "placed" and e.model == "pinned")
    assert (await fleet.ensure("pinned")).node == "n1"

    unpinned: SchedulerReply = await fleet.ask(
        subjects.SCHED_UNPIN, ModelRef(model="pinned"), SchedulerReply
    )
    assert unpinned.ok and unpinned.detail == "unpinned 'pinned'"
    assert (await fleet.ensure("other")).ok  # now it may be evicted
    assert [e.model for e in fleet.scheduler_events("evicted")] == ["pinned"]


async def test_defrag_restarts_an_idle_engine_after_its_cycles(fleet: Fleet, hello_model) -> None:
    await fleet.start_neuron("n1", 1000, [model("a", hello_model)])
    await fleet.start_scheduler(eviction={"defrag_after_cycles": 3})
    assert (await fleet.ensure("a")).ok
    unload: SchedulerReply = await fleet.ask(
        subjects.SCHED_UNLOAD, ModelRef(model="a"), SchedulerReply
    )
    assert unload.ok and unload.detail == "unloaded 'a' from n1"
    assert (await fleet.ensure("a")).ok  # third cycle
    defrag = await fleet.wait_for(lambda e: getattr(e, "kind", "") == "defrag")
    assert (
        defrag.node == "n1" and "3 load/unload cycles" in defrag.reason and "'a'" in defrag.reason
    )


async def test_a_neuron_that_stops_heartbeating_leaves(fleet: Fleet, hello_model) -> None:
    neuron = await fleet.start_neuron("n1", 1000, [model("a", hello_model)])
    await fleet.start_scheduler()
    await fleet.start_neuron("n2", 1000, [model("a", hello_model)])
    await fleet.wait_for(lambda e: getattr(e, "kind", "") == "neuron_joined" and e.node == "n2")
    neuron.task.cancel()  # dies without a goodbye
    left = await fleet.wait_for(lambda e: getattr(e, "kind", "") == "neuron_left")
    assert (left.node, left.reason) == ("n1", "missed 3 heartbeats")
    assert (await fleet.ensure("a")).node == "n2"


async def test_bad_requests_to_the_scheduler_get_clear_errors(fleet: Fleet) -> None:
    await fleet.start_scheduler()
    raw = await fleet.nc.request(subjects.SCHED_ENSURE, b"{nope", timeout=5)
    reply = codec.decode(raw.data, EnsureReply)
    assert not reply.ok and reply.error is not None and reply.error.code == "bad_request"
    unknown = await fleet.ask(subjects.SCHED_ENSURE, EnsureModel(model="ghost"), EnsureReply)
    assert unknown.error is not None and unknown.error.code == "no_capacity"
    assert "no live neuron" in unknown.error.message


async def stored_pins(fleet: Fleet) -> list[str]:
    kv = await fleet.nc.jetstream().key_value(subjects.PINS_BUCKET)
    try:
        return sorted(await kv.keys())
    except NoKeysError:
        return []


async def test_a_refused_pin_is_not_kept_and_says_why(fleet: Fleet, hello_model) -> None:
    await fleet.start_neuron(
        "n1", 1000, [model("a", hello_model), model("huge", hello_model, 5000)]
    )
    await fleet.start_scheduler()
    asked = (
        (ModelRef(model="ghost"), "model_not_found", "not pinned: unknown model 'ghost'"),
        (ModelRef(model="a", node="nowhere"), "not_found", "no live neuron is named 'nowhere'"),
        (ModelRef(model="huge"), "no_capacity", "needs 5000 MiB, capacity is 1000 MiB"),
    )
    replies = [await fleet.ask(subjects.SCHED_PIN, ref, SchedulerReply) for ref, _, _ in asked]
    assert await stored_pins(fleet) == []  # nothing for the scheduler to retry each tick
    for reply, (ref, code, said) in zip(replies, asked, strict=True):
        assert not reply.ok and reply.error is not None, ref
        assert reply.error.code == code and said in reply.error.message, reply.error
    status: FleetStatus = await fleet.ask(subjects.SCHED_STATUS, ModelRef(model=""), FleetStatus)
    assert status.pins == [] and fleet.scheduler_events("pinned") == []

    # A pin that holds is stored, and a refused re-pin leaves it as it was.
    assert (await fleet.ask(subjects.SCHED_PIN, ModelRef(model="a"), SchedulerReply)).ok
    moved = await fleet.ask(subjects.SCHED_PIN, ModelRef(model="a", node="gone"), SchedulerReply)
    assert not moved.ok
    status = await fleet.ask(subjects.SCHED_STATUS, ModelRef(model=""), FleetStatus)
    assert [(p.model, p.node) for p in status.pins] == [("a", "")]
    assert await stored_pins(fleet) == [subjects.kv_key("a")]


async def test_unloading_a_pinned_model_is_refused_until_unpinned(
    fleet: Fleet, hello_model
) -> None:
    await fleet.start_neuron("n1", 1000, [model("a", hello_model)])
    await fleet.start_scheduler()
    pinned = await fleet.ask(subjects.SCHED_PIN, ModelRef(model="a", node="n1"), SchedulerReply)
    assert pinned.ok, pinned.error
    assert (await fleet.ensure("a")).ok
    refused: SchedulerReply = await fleet.ask(
        subjects.SCHED_UNLOAD, ModelRef(model="a"), SchedulerReply
    )
    assert not refused.ok and refused.error is not None
    assert (refused.error.code, refused.error.message) == (
        "model_pinned", "'a' is pinned on n1; unpin it first"
    )  # fmt: skip
    assert fleet.scheduler_events("unloaded") == [] and fleet.model_events("a", "unloading") == []
    assert (await fleet.ask(subjects.SCHED_UNPIN, ModelRef(model="a"), SchedulerReply)).ok
    unloaded = await fleet.ask(subjects.SCHED_UNLOAD, ModelRef(model="a"), SchedulerReply)
    assert unloaded.ok and unloaded.detail == "unloaded 'a' from n1"


async def test_a_model_no_neuron_serves_is_not_found(fleet: Fleet, hello_model) -> None:
    await fleet.start_neuron("n1", 1000, [model("a", hello_model), model("big", hello_model, 5000)])
    await fleet.start_scheduler()
    unknown = await fleet.ensure("ghost")
    assert not unknown.ok and unknown.error is not None
    assert unknown.error.code == "model_not_found" and "'ghost'" in unknown.error.message
    too_big = await fleet.ensure("big")  # served, but nowhere it fits: a capacity answer
    assert too_big.error is not None and too_big.error.code == "no_capacity"
    unload: SchedulerReply = await fleet.ask(
        subjects.SCHED_UNLOAD, ModelRef(model="ghost"), SchedulerReply
    )
    assert not unload.ok and unload.error is not None
    assert unload.error.code == "model_not_found"
    not_loaded = await fleet.ask(subjects.SCHED_UNLOAD, ModelRef(model="a"), SchedulerReply)
    assert not_loaded.ok and not_loaded.detail == "'a' is not loaded"
