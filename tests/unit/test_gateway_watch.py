"""Which requests have lost their gateway."""

from __future__ import annotations

from cortex_neuron.gateway_watch import FIRST_HEARTBEAT_GRACE_S, MISSED, GatewayWatch


def test_requests_of_a_gateway_that_stopped_beating_are_orphans() -> None:
    watch = GatewayWatch()
    watch.heartbeat("alive", 1.0, now=100.0)
    watch.heartbeat("dead", 1.0, now=100.0 - MISSED - 0.5)
    requests = [("r1", "alive", 90.0), ("r2", "dead", 90.0), ("r3", "", 0.0)]
    # A request without a gateway name comes from a gateway that sends no heartbeats.
    assert watch.orphans(requests, now=100.0) == ["r2"]


def test_a_gateway_not_yet_heard_gets_a_grace_period() -> None:
    watch = GatewayWatch()
    fresh = ("new", "unheard", 100.0)
    old = ("old", "unheard", 100.0 - FIRST_HEARTBEAT_GRACE_S - 1)
    assert watch.orphans([fresh, old], now=100.0) == ["old"]


def test_the_gateways_own_interval_sets_its_deadline() -> None:
    watch = GatewayWatch()
    watch.heartbeat("slow", 5.0, now=100.0)
    assert not watch.lost("slow", since=0.0, now=100.0 + MISSED * 5.0 - 0.1)
    assert watch.lost("slow", since=0.0, now=100.0 + MISSED * 5.0 + 0.1)
