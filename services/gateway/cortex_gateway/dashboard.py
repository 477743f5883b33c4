"""The live fleet page's data: heartbeats for the fleet and its catalogue, request records
(from every gateway replica, via the bus) for the last minutes: totals, a series, each
model's TTFT and tok/s over time, and the latest requests (pure: callers pass `now`)."""

from __future__ import annotations

from collections import deque
from statistics import median
from typing import Any

from cortex_core.fleet import FleetState
from cortex_wire.messages import RequestRecord

WINDOW_S = 300.0
STEP_S = 10.0
# The latest requests the page lists.
LOG_ROWS = 50


class RecentRequests:
    """Request records of the last WINDOW_S seconds (bounded: old ones fall off)."""

    def __init__(self, limit: int = 50_000) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=limit)

    def add(self, record: RequestRecord) -> None:
        self._records.append(record)

    def window(self, now: float) -> list[RequestRecord]:
        while self._records and self._records[0].at < now - WINDOW_S:
            self._records.popleft()
        return list(self._records)


def request_series(records: list[RequestRecord], now: float) -> list[dict[str, Any]]:
    """Per STEP_S bucket over the window: requests, median TTFT, generated tokens/s."""
    buckets = int(WINDOW_S // STEP_S)
    series: list[dict[str, Any]] = []
    for index in range(buckets):
        start = now - WINDOW_S + index * STEP_S
        inside = [r for r in records if start <= r.at < start + STEP_S]
        ttfts = [r.ttft_s for r in inside if r.ttft_s is not None]
        series.append(
            {
                "t": round(start, 3),
                "requests": len(inside),
                "ttft_p50_s": round(median(ttfts), 4) if ttfts else None,
                "tokens_per_s": round(sum(r.completion_tokens for r in inside) / STEP_S, 2),
            }
        )
    return series


def model_series(records: list[RequestRecord], now: float) -> dict[str, list[dict[str, Any]]]:
    """The series for each model's requests alone."""
    models = sorted({r.model for r in records})
    return {m: request_series([r for r in records if r.model == m], now) for m in models}


def log_rows(records: list[RequestRecord]) -> list[dict[str, Any]]:
    """The latest requests, newest first: where each went, how it ended, where its time
    to the first token went (queue, prefill; a cold load), and its decode speed."""
    rows = []
    for r in reversed(records[-LOG_ROWS:]):
        decode = r.timings.decode_s
        rows.append(
            {
                "at": r.at, "request_id": r.request_id, "model": r.model, "node": r.node,
                "route": r.route, "outcome": r.outcome, "ttft_s": r.ttft_s,
                "queue_s": r.timings.queue_s, "prefill_s": r.timings.prefill_s,
                "load_s": r.load_s if r.cold_start else 0.0,
                "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
                "cached_tokens": r.cached_tokens,
                "tokens_per_s": round((r.completion_tokens - 1) / decode, 2)
                if decode > 0 and r.completion_tokens > 1 else None,
            }
        )  # fmt: skip
    return rows


def catalogue_rows(fleet: FleetState, now_mono: float) -> list[dict[str, Any]]:
    """Every model the fleet can serve, with its state on each neuron (for actions)."""
    return [
        {
            "model": model, "embedding": view.entry.embedding, "n_ctx": view.entry.n_ctx,
            "served_by": sorted(view.served_by), "pinned_on": view.entry.pinned_on,
            "states": {node: m.state for node, m in sorted(view.states.items())},
        }
        for model, view in sorted(fleet.catalogue(now_mono).items())
    ]  # fmt: skip


def dashboard_data(
    fleet: FleetState, records: list[RequestRecord], now_mono: float, now: float
) -> dict[str, Any]:
    neurons = []
    models = []
    for view in fleet.live(now_mono):
        heartbeat = view.heartbeat
        neurons.append(
            {
                "node": view.node,
                "devices": [
                    {"name": d.name, "kind": d.kind, "total_mb": d.total_mb, "free_mb": d.free_mb}
                    for d in heartbeat.devices
                ],
                "cycles": heartbeat.cycles,
            }
        )
        models += [
            {
                "model": m.id,
                "node": view.node,
                "state": m.state,
                "busy": m.busy,
                "queued": m.queued,
                "tokens_per_s": m.tokens_per_s,
                "footprint_mb": m.footprint_mb,
            }
            for m in heartbeat.models
        ]
    ttfts = [r.ttft_s for r in records if r.ttft_s is not None]
    return {
        "at": now,
        "neurons": neurons,
        "models": models,
        "catalogue": catalogue_rows(fleet, now_mono),
        "log": log_rows(records),
        "per_model": model_series(records, now),
        "requests": {
            "last_minutes": WINDOW_S / 60,
            "total": len(records),
            "errors": sum(r.outcome not in ("ok", "cancelled") for r in records),
            "ttft_p50_s": round(median(ttfts), 4) if ttfts else None,
            "tokens": sum(r.completion_tokens for r in records),
            "series": request_series(records, now),
        },
    }
