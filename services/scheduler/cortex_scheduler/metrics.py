"""The scheduler's own Prometheus metrics (`[scheduler] metrics_listen`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class SchedulerMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.leader = Gauge(
            "cortex_scheduler_leader", "1 while this scheduler is the active one", registry=r
        )
        self.placements = Counter(
            "cortex_scheduler_placements", "Placement decisions", ("outcome",), registry=r
        )
        self.evictions = Counter(
            "cortex_scheduler_evictions", "Models evicted", ("reason",), registry=r
        )
        self.loads = Counter("cortex_scheduler_loads", "Loads commanded", ("outcome",), registry=r)
        self.load_seconds = Histogram(
            "cortex_scheduler_load_seconds",
            "Commanded load until ready",
            ("model",),
            buckets=LOAD_BUCKETS,
            registry=r,
        )
        self.neurons = Gauge("cortex_scheduler_neurons", "Live neurons", registry=r)
