"""Scenario 5: the scheduler's placement decision time with 200 neurons x 50 models."""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from cortex_scheduler.policy import NeuronState, Resident, plan_load
from cortex_wire.messages import CatalogueEntry, Device

TARGET_P99_MS = 2.0


def fleet(neurons: int = 200, models: int = 50, seed: int = 7) -> list[NeuronState]:
    rng = random.Random(seed)
    catalogue = tuple(
        CatalogueEntry(
            id=f"model-{m}",
            n_ctx=4096,
            footprint_mb=rng.randint(2_000, 20_000),
            residency_priority=rng.randint(0, 3),
        )
        for m in range(models)
    )
    states = []
    for n in range(neurons):
        gpus = tuple(
            Device(index=i, name="gpu", kind="cuda", total_mb=24_000, free_mb=0) for i in range(2)
        )
        resident = tuple(
            Resident(
                f"model-{m}",
                "ready",
                catalogue[m].footprint_mb,
                busy=rng.randint(0, 1),
                last_used_at=rng.uniform(0, 1000),
                priority=catalogue[m].residency_priority,
            )
            for m in rng.sample(range(models), 3)
        )
        states.append(NeuronState(f"node-{n:03d}", 48_000, gpus, resident, catalogue))
    return states


def run(rounds: int = 1000) -> dict[str, Any]:
    states = fleet()
    rng = random.Random(11)
    samples = []
    for _ in range(rounds):
        model = f"model-{rng.randrange(50)}"
        started = time.perf_counter()
        plan_load(model, states, "priority" if rng.random() < 0.5 else "lru")
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[int(len(samples) * 0.99) - 1]
    return {
        "scenario": "placement",
        "neurons": 200,
        "models": 50,
        "decisions": rounds,
        "p50_ms": round(p50, 3),
        "p99_ms": round(p99, 3),
        "target_p99_ms": TARGET_P99_MS,
        "p99_vs_target": round(p99 / TARGET_P99_MS, 3),
    }
