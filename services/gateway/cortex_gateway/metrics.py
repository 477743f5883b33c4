"""The gateway's Prometheus metrics (served on their own port, `metrics_listen`).

Per request, labelled by model, node, route and outcome: counts, tokens of each kind,
duration, time to first token and its parts (queue wait, model load on a cold start,
prefill), decode speed, cold starts. Fleet gauges come from heartbeats at scrape time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cortex_core.fleet import FleetState
from cortex_wire.messages import RequestRecord, Timings, Usage

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
RATE_BUCKETS = (1, 5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120)
LABELS = ("model", "node", "route")


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry

        def counter(name: str, doc: str, labels: tuple[str, ...] = LABELS) -> Counter:
            return Counter(name, doc, labels, registry=r)

        def histogram(
            name: str, doc: str, buckets: tuple[float, ...] = LATENCY_BUCKETS
        ) -> Histogram:
            return Histogram(name, doc, LABELS, buckets=buckets, registry=r)

        self.requests = counter("cortex_requests", "Requests by outcome", (*LABELS, "outcome"))
        self.prompt_tokens = counter("cortex_prompt_tokens", "Prompt tokens processed")
        self.completion_tokens = counter("cortex_completion_tokens", "Completion tokens generated")
        self.reasoning_tokens = counter(
            "cortex_reasoning_tokens", "Reasoning tokens (part of completion)"
        )
        self.cached_tokens = counter(
            "cortex_cached_tokens", "Prompt tokens reused from the KV cache"
        )
        self.cold_starts = counter("cortex_cold_starts", "Requests that waited for a model load")
        self.duration = histogram("cortex_request_duration_seconds", "Whole request duration")
        self.ttft = histogram("cortex_time_to_first_token_seconds", "Time to first token")
        self.queue_wait = histogram(
            "cortex_queue_wait_seconds", "TTFT part: waiting for the engine"
        )
        self.model_load = histogram("cortex_model_load_seconds", "TTFT part: cold model load")
        self.prefill = histogram("cortex_prefill_seconds", "TTFT part: prompt processing")
        self.decode_rate = histogram(
            "cortex_decode_tokens_per_second", "Decode speed per request", RATE_BUCKETS
        )
        self.in_flight = Gauge(
            "cortex_requests_in_flight", "Requests being served", ("model", "route"), registry=r
        )

    def watch_fleet(self, fleet: FleetState) -> None:
        self.registry.register(FleetCollector(fleet))


class FleetCollector(Collector):
    """Fleet gauges, read from the latest heartbeats whenever Prometheus scrapes."""

    def __init__(self, fleet: FleetState) -> None:
        self.fleet = fleet

    def collect(self) -> Iterator[GaugeMetricFamily]:
        live = self.fleet.live(time.monotonic())
        up = GaugeMetricFamily("cortex_neurons_up", "Neurons whose heartbeats arrive")
        up.add_metric([], len(live))
        total = GaugeMetricFamily(
            "cortex_device_memory_total_mib", "Device memory", labels=["node", "device"]
        )
        free = GaugeMetricFamily(
            "cortex_device_memory_free_mib", "Free device memory", labels=["node", "device"]
        )
        loaded = GaugeMetricFamily(
            "cortex_models_loaded", "Models loaded per neuron", labels=["node"]
        )
        busy = GaugeMetricFamily(
            "cortex_model_requests_in_flight", "Generating", labels=["model", "node"]
        )
        queued = GaugeMetricFamily(
            "cortex_model_requests_queued", "Waiting", labels=["model", "node"]
        )
        for view in live:
            heartbeat = view.heartbeat
            for device in heartbeat.devices:
                name = f"{device.kind}{device.index}"
                total.add_metric([view.node, name], device.total_mb)
                free.add_metric([view.node, name], device.free_mb)
            loaded.add_metric([view.node], sum(m.state == "ready" for m in heartbeat.models))
            for model in heartbeat.models:
                busy.add_metric([model.id, view.node], model.busy)
                queued.add_metric([model.id, view.node], model.queued)
        yield from (up, total, free, loaded, busy, queued)


# The request the running task answers, once a trace counts it: (the task, the request's
# id). The HTTP error handler answers with that id, and knows not to count it again.
_counted: ContextVar[tuple[object, str] | None] = ContextVar("cortex_counted", default=None)


def _running_task() -> object:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no event loop
        return None


def counted_request() -> str | None:
    """The id of the request this task answers, if a RequestTrace already counts it."""
    counted = _counted.get()
    if counted is None or counted[0] is None or counted[0] is not _running_task():
        return None  # none, or one a task before this one (on the same connection) ran
    return counted[1]


def count_refused(
    metrics: GatewayMetrics,
    model: str,
    route: str,
    outcome: str,
    publish: Callable[[RequestRecord], None] | None = None,
    request_id: str = "",
    gateway: str = "",
) -> None:
    """A request refused before any trace followed it (the HTTP edge's own refusals: a
    body that does not parse, an unknown model); `model` is "" unless the catalogue has it,
    so clients cannot mint label values."""
    metrics.requests.labels(model, "", route, outcome).inc()
    if publish is not None:
        publish(
            RequestRecord(
                request_id=request_id, gateway=gateway, model=model, node="", route=route,
                outcome=outcome, at=time.time(), duration_s=0.0,
            )
        )  # fmt: skip


class RequestTrace:
    """Times one request and records it once, whichever way it ends.

    What its stream carried is noted as it passes (`admitted`, `generated`), so a request
    that ends before the neuron's final frame (the client left, the stream broke) still
    counts the tokens it was sent."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        model: str,
        route: str,
        publish: Callable[[RequestRecord], None] | None = None,
        request_id: str = "",
        gateway: str = "",
    ) -> None:
        self._clock = time.perf_counter
        self._metrics = metrics
        self.model, self.route = model, route
        self.node = ""
        self.cold_start, self.load_s = False, 0.0
        self._publish = publish
        self._request_id, self._gateway = request_id, gateway
        self.started = self._clock()
        self.first_token_at: float | None = None
        self._finished = False
        self.outcome = ""
        # The prompt's length once a neuron accepted the request, and the answer's tokens
        # (reasoning among them) streamed so far.
        self.prompt_tokens = 0
        self.streamed = Usage()
        metrics.in_flight.labels(model, route).inc()
        if counted_request() is None:  # the first of a request's traces (n choices) names it
            _counted.set((_running_task(), request_id))

    def accepted(self, node: str, cold_start: bool, load_s: float) -> None:
        self.node, self.cold_start, self.load_s = node, cold_start, load_s

    def first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = self._clock()

    def admitted(self, prompt_tokens: int) -> None:
        self.prompt_tokens = prompt_tokens

    def generated(self, tokens: int, reasoning: bool = False) -> None:
        """`tokens` more of the answer went out (reasoning ones, if `reasoning`)."""
        self.streamed.completion_tokens += tokens
        if reasoning:
            self.streamed.reasoning_tokens += tokens

    def finish(
        self, outcome: str, usage: Usage | None = None, timings: Timings | None = None
    ) -> None:
        if self._finished:
            return
        self._finished = True
        self.outcome = outcome
        if usage is None or not (usage.prompt_tokens or usage.completion_tokens):
            usage = self._streamed_usage()  # no final frame: what was streamed
        timings = timings or Timings()
        now = self._clock()
        m = self._metrics
        labels = (self.model, self.node, self.route)
        m.in_flight.labels(self.model, self.route).dec()
        m.requests.labels(*labels, outcome).inc()
        m.duration.labels(*labels).observe(now - self.started)
        for counter, value in (
            (m.prompt_tokens, usage.prompt_tokens),
            (m.completion_tokens, usage.completion_tokens),
            (m.reasoning_tokens, usage.reasoning_tokens),
            (m.cached_tokens, usage.cached_tokens),
        ):
            if value:
                counter.labels(*labels).inc(value)
        ttft = None if self.first_token_at is None else self.first_token_at - self.started
        if ttft is not None:
            m.ttft.labels(*labels).observe(ttft)
            m.queue_wait.labels(*labels).observe(timings.queue_s)
            m.prefill.labels(*labels).observe(timings.prefill_s)
        if self.cold_start:
            m.cold_starts.labels(*labels).inc()
            m.model_load.labels(*labels).observe(self.load_s)
        if usage.completion_tokens > 1 and timings.decode_s > 0:
            m.decode_rate.labels(*labels).observe((usage.completion_tokens - 1) / timings.decode_s)
        if self._publish is not None:
            self._publish(
                RequestRecord(
                    request_id=self._request_id,
                    gateway=self._gateway,
                    model=self.model,
                    node=self.node,
                    route=self.route,
                    outcome=outcome,
                    at=time.time(),
                    duration_s=round(now - self.started, 6),
                    ttft_s=None if ttft is None else round(ttft, 6),
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    reasoning_tokens=usage.reasoning_tokens,
                    cached_tokens=usage.cached_tokens,
                    cold_start=self.cold_start,
                    load_s=round(self.load_s, 6),
                    timings=timings,
                )
            )

    def _streamed_usage(self) -> Usage:
        """The usage of a request without the neuron's final count: the tokens it was sent,
        and its prompt once anything was generated from it."""
        streamed = self.streamed
        if not streamed.completion_tokens:
            return Usage()
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=streamed.completion_tokens,
            reasoning_tokens=streamed.reasoning_tokens,
        )
