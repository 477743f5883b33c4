"""The gateway's memory of where it sent each conversation: bounded, and only for a while
(until heartbeats have caught up)."""

from cortex_core.fleet import LoadedModel, held_prefix
from cortex_gateway.recent_routes import RecentRoutes


def test_entries_count_for_their_time_and_the_oldest_go_first() -> None:
    now = [0.0]
    routes = RecentRoutes(size=2, ttl_s=5.0, clock=lambda: now[0])
    routes.note("d1", "a")
    routes.note("d2", "b")
    assert routes.get("d1") == "a" and "d2" in routes and len(routes) == 2
    routes.note("d3", "a")  # over the size: d1 goes
    assert routes.get("d1") is None and dict(routes) == {"d2": "b", "d3": "a"}
    now[0] = 6.0
    assert routes.get("d2") is None and len(routes) == 0  # stale: heartbeats say by now


def test_a_recent_route_counts_as_a_held_prefix_of_that_node_only() -> None:
    model = LoadedModel(id="m", state="ready")
    routes = RecentRoutes()
    routes.note("d1", "b")
    assert held_prefix(model, ["d0", "d1", "d2"], "b", routes) == 2
    assert held_prefix(model, ["d0", "d1", "d2"], "a", routes) == 0
