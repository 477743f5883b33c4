from cortex_core.fleet import FleetState, least_busy, resolve_alias
from cortex_wire.messages import CatalogueEntry, Device, Heartbeat, LoadedModel


def beat(node, *, free=1000, total=1000, models=(), catalogue=("m",), aliases=None, **entry):
    """A heartbeat of a neuron with one CPU device serving `catalogue` (100 MiB each)."""
    return Heartbeat(
        node=node,
        instance="i",
        seq=1,
        sent_at=0.0,
        interval_s=1.0,
        devices=[Device(index=0, name="cpu", kind="cpu", total_mb=total, free_mb=free)],
        memory_budget_mb=total,
        models=list(models),
        catalogue=[CatalogueEntry(id=m, n_ctx=512, footprint_mb=100, **entry) for m in catalogue],
        aliases=aliases or {},
    )


def test_neuron_is_gone_after_three_missed_heartbeats() -> None:
    fleet = FleetState()
    fleet.observe(beat("a"), now=100.0)
    assert [v.node for v in fleet.live(102.9)] == ["a"]
    assert fleet.live(103.1) == []
    assert fleet.expire(103.1) == ["a"]


def test_a_frame_from_a_neuron_keeps_it_alive_while_its_heartbeats_are_late() -> None:
    fleet = FleetState()
    fleet.observe(beat("a", models=[LoadedModel(id="m", state="ready")]), now=100.0)
    fleet.heard_from("a", 102.5)  # a frame of a stream it serves
    fleet.heard_from("a", 101.0)  # an older one, read late: changes nothing
    assert [v.node for v in fleet.live(105.4)] == ["a"]
    assert [v.node for v, _ in fleet.ready_replicas("m", 105.4)] == ["a"]
    assert fleet.live(105.6) == []
    fleet.heard_from("b", 105.0)  # a neuron never heard of is not made up
    assert fleet.neurons.keys() == {"a"}


def test_allow_list_ignores_other_neurons() -> None:
    fleet = FleetState(allowed={"a"})
    assert fleet.observe(beat("a"), 0.0)
    assert not fleet.observe(beat("intruder"), 0.0)
    assert [v.node for v in fleet.live(0.0)] == ["a"]


def test_catalogue_merges_every_neuron_and_resolves_aliases() -> None:
    fleet = FleetState()
    ready = LoadedModel(id="m", state="ready")
    fleet.observe(beat("a", catalogue=("m", "x"), models=[ready], aliases={"fast": "m"}), 0.0)
    fleet.observe(beat("b", catalogue=("m", "y")), 0.0)
    catalogue = fleet.catalogue(0.0)
    assert sorted(catalogue) == ["m", "x", "y"]
    assert catalogue["m"].served_by == ["a", "b"]
    assert catalogue["m"].states["a"].state == "ready"
    assert fleet.resolve("fast", 0.0) == "m"
    assert fleet.resolve("m", 0.0) == "m"
    # Another neuron's alias never hides a model that has that id.
    fleet.observe(beat("c", catalogue=("fast",)), 0.0)
    assert fleet.resolve("fast", 0.0) == "fast"


def test_patterns_map_client_model_ids_most_specific_first() -> None:
    aliases = {"claude-*": "big", "claude-haiku-*": "small", "claude-haiku-4-5": "exact",
               "gpt-?": "old"}  # fmt: skip
    assert resolve_alias("claude-haiku-4-5", aliases) == "exact"  # an alias beats patterns
    assert resolve_alias("claude-haiku-4-5-20251001", aliases) == "small"
    assert resolve_alias("claude-sonnet-4-6", aliases) == "big"
    assert resolve_alias("gpt-4", aliases) == "old" and resolve_alias("gpt-40", aliases) == "gpt-40"
    assert resolve_alias("Claude-sonnet", aliases) == "Claude-sonnet"  # case-sensitive
    fleet = FleetState()
    fleet.observe(beat("a", catalogue=("big", "claude-opus")), 0.0)
    fleet.observe(beat("b", catalogue=("small",), aliases=aliases), 0.0)
    assert fleet.resolve("claude-opus", 0.0) == "claude-opus"  # a model id beats a pattern
    assert fleet.resolve("claude-haiku-9", 0.0) == "small"


def test_least_busy_ready_replica_wins() -> None:
    fleet = FleetState()
    fleet.observe(beat("a", models=[LoadedModel(id="m", state="ready", busy=1, queued=3)]), 0.0)
    fleet.observe(beat("b", models=[LoadedModel(id="m", state="ready", busy=1)]), 0.0)
    fleet.observe(beat("c", models=[LoadedModel(id="m", state="loading")]), 0.0)
    assert least_busy(fleet.ready_replicas("m", 0.0)) == "b"
    assert least_busy([]) is None


def test_a_conversation_goes_where_its_prefix_is_cached_unless_that_replica_is_busy() -> None:
    from cortex_core.fleet import best_replica, held_prefix

    digests = ["d0", "d1", "d2"]
    holder = LoadedModel(id="m", state="ready", slots=4, prefixes=["x", "d1"])
    other = LoadedModel(id="m", state="ready", slots=4, prefixes=["d0"])
    assert held_prefix(holder, digests) == 2 and held_prefix(other, digests) == 1
    fleet = FleetState()
    fleet.observe(beat("a", models=[other]), 0.0)
    fleet.observe(beat("b", models=[holder]), 0.0)
    assert best_replica(fleet.ready_replicas("m", 0.0), digests) == "b"  # the longest prefix
    assert best_replica(fleet.ready_replicas("m", 0.0), []) == "a"  # none: least busy
    busy = LoadedModel(id="m", state="ready", slots=4, busy=4, queued=2, prefixes=["d1"])
    fleet.observe(beat("b", models=[busy]), 0.0)
    assert best_replica(fleet.ready_replicas("m", 0.0), digests) == "a"  # too busy: elsewhere


def test_a_burst_between_heartbeats_spreads_by_what_this_gateway_sent() -> None:
    """Both replicas look idle in their last heartbeats; the gateway's own streams in
    flight say one of them has four already."""
    from cortex_core.fleet import counting_own

    fleet = FleetState()
    for node in ("a", "b"):
        fleet.observe(beat(node, models=[LoadedModel(id="m", state="ready", slots=4)]), 0.0)
    replicas = fleet.ready_replicas("m", 0.0)
    assert least_busy(replicas) == "a"
    assert least_busy(counting_own(replicas, {"a": 4})) == "b"
    # a heartbeat that already counts more than the gateway knows of is kept as it is
    queued = LoadedModel(id="m", state="ready", slots=4, busy=4, queued=3)
    fleet.observe(beat("a", models=[queued]), 0.0)
    [(_, a), _] = counting_own(fleet.ready_replicas("m", 0.0), {"a": 2})
    assert (a.busy, a.queued) == (4, 3)
