"""The gateway's Prometheus metrics (served on their own port, `metrics_listen`)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
RATE_BUCKETS = (1, 5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        labels = ("model", "route")
        self.requests = Counter(
            "cortex_requests", "Requests by outcome", (*labels, "outcome"), registry=self.registry
        )
        self.prompt_tokens = Counter(
            "cortex_prompt_tokens", "Prompt tokens processed", labels, registry=self.registry
        )
        self.completion_tokens = Counter(
            "cortex_completion_tokens",
            "Completion tokens generated",
            labels,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "cortex_time_to_first_token_seconds", "Time to first token", labels,
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.duration = Histogram(
            "cortex_request_duration_seconds", "Whole request duration", labels,
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.decode_rate = Histogram(
            "cortex_decode_tokens_per_second", "Decode speed per request", labels,
            buckets=RATE_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            "cortex_requests_in_flight", "Requests being served", labels, registry=self.registry
        )


class RequestTrace:
    """Times one request and records it once, whichever way it ends."""

    def __init__(self, metrics: GatewayMetrics, model: str, route: str) -> None:
        self._clock = time.perf_counter
        self._metrics = metrics
        self._labels = (model, route)
        self.started = self._clock()
        self.first_token_at: float | None = None
        self._finished = False
        self.outcome = ""
        metrics.in_flight.labels(*self._labels).inc()

    def first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = self._clock()
            self._metrics.ttft.labels(*self._labels).observe(self.first_token_at - self.started)

    def finish(self, outcome: str, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        if self._finished:
            return
        self._finished = True
        self.outcome = outcome
        now = self._clock()
        m, labels = self._metrics, self._labels
        m.in_flight.labels(*labels).dec()
        m.requests.labels(*labels, outcome).inc()
        m.duration.labels(*labels).observe(now - self.started)
        if prompt_tokens:
            m.prompt_tokens.labels(*labels).inc(prompt_tokens)
        if completion_tokens:
            m.completion_tokens.labels(*labels).inc(completion_tokens)
        if self.first_token_at is not None and completion_tokens > 1 and now > self.first_token_at:
            m.decode_rate.labels(*labels).observe(
                (completion_tokens - 1) / (now - self.first_token_at)
            )
