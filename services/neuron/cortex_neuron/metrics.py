"""The neuron's own Prometheus metrics (`[neuron] metrics_listen`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Totals:
    """A counter fed the engine thread's running totals (by label) as they stand."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.seen: dict[tuple[str, str], int] = {}

    def observe(self, model: str, totals: dict[str, int]) -> None:
        for source, total in totals.items():
            previous = self.seen.get((model, source), 0)
            added = total - previous if total >= previous else total  # a reloaded engine
            if added > 0:
                self.counter.labels(model, source).inc(added)
            self.seen[model, source] = total


class NeuronMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.loads = Counter(
            "cortex_neuron_model_loads", "Model loads", ("model", "outcome"), registry=r
        )
        self.load_seconds = Histogram(
            "cortex_neuron_model_load_seconds",
            "Model load time",
            ("model",),
            buckets=LOAD_BUCKETS,
            registry=r,
        )
        self.unloads = Counter(
            "cortex_neuron_model_unloads", "Model unloads", ("model",), registry=r
        )
        self.requests = Counter(
            "cortex_neuron_requests", "Requests finished", ("model", "finish"), registry=r
        )
        self.refused = Counter(
            "cortex_neuron_requests_refused", "Requests refused", ("model", "code"), registry=r
        )
        self.tokens = Counter(
            "cortex_neuron_generated_tokens", "Tokens generated", ("model",), registry=r
        )
        self.in_flight = Gauge(
            "cortex_neuron_requests_in_flight", "Accepted, not finished", ("model",), registry=r
        )
        self.tokens_per_s = Gauge(
            "cortex_neuron_decode_tokens_per_second", "Recent decode speed", ("model",), registry=r
        )
        self.reused = Totals(
            Counter(
                "cortex_neuron_reused_prompt_tokens",
                "Prompt tokens not prefilled: from the slot's own cache, copied from another "
                "slot, or restored from host memory",
                ("model", "source"),
                registry=r,
            )
        )
        self.cycles = Gauge(
            "cortex_neuron_load_unload_cycles", "Cycles since the engine started", registry=r
        )
