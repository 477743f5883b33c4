"""The live fleet page's data: heartbeats for the fleet, request records (from every
gateway replica, via the bus) for the last minutes (pure: callers pass `now`)."""

from __future__ import annotations

from collections import deque
from statistics import median
from typing import Any

from cortex_core.fleet import FleetState
from cortex_wire.messages import RequestRecord

WINDOW_S = 300.0
STEP_S = 10.0


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
        "requests": {
            "last_minutes": WINDOW_S / 60,
            "total": len(records),
            "errors": sum(r.outcome not in ("ok", "cancelled") for r in records),
            "ttft_p50_s": round(median(ttfts), 4) if ttfts else None,
            "tokens": sum(r.completion_tokens for r in records),
            "series": request_series(records, now),
        },
    }
