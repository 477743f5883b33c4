"""Scenario 1: what the whole stack adds to an engine that costs nothing.

The scripted engine plays tokens at a fixed step rate with no compute. The same engine is
measured twice in one run: called directly in this process (the baseline), and behind
`cortex up` (gateway, NATS, neuron as separate processes) through HTTP streaming. Reported:
added TTFT p50/p99 and added per-token time at 1, 16 and 64 concurrent streams, and the
streamed tokens/s one gateway process sustains with an unpaced engine.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.stack import Stack, stream_chat, write_models
from cortex_core.config import ModelProfile, ScriptProfile
from cortex_neuron.channel import Errored, Finished, TextChunk, TokenChannel
from cortex_neuron.engine import Engine, Job
from cortex_wire.messages import ChatMessage, InferRequest, SamplingParams

RATE = 100.0  # decode steps per second, as a mid-size model on a GPU
TOKENS = 64  # per request in the latency runs
CONCURRENCY = (1, 16, 64)
ROUNDS = 3
THROUGHPUT_STREAMS = 64
THROUGHPUT_TOKENS = 4000
REPLY = "The quick brown fox jumps over the lazy dog. "
TARGETS = {"added_ttft_p50_ms": 1.0, "added_ttft_p99_ms": 5.0, "gateway_tok_s": 50_000}


def profiles() -> list[dict[str, Any]]:
    common = {"n_ctx": 8192, "parallel": 64}
    return [
        {"id": "paced", **common, "script": {"reply": REPLY, "repeat": True, "tokens_per_s": RATE}},
        {"id": "unpaced", **common, "script": {"reply": REPLY, "repeat": True}},
    ]


def body(model: str, tokens: int, user: int) -> dict[str, object]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": f"stream {user}"}],
        "max_tokens": tokens,
    }


# One streamed request: (ttft_s, per_token_s, tokens, started, last_at).
Sample = tuple[float, float, int, float, float]
StreamOnce = Callable[[str, int, int], Awaitable[Sample]]  # (model, tokens, user)


async def steady(stream_once: StreamOnce, streams: int) -> list[Sample]:
    """`streams` clients, each sending ROUNDS + 1 requests back to back, their first
    requests spread evenly over one request's duration so arrivals are steady, not a burst;
    each client's first request is a warm-up."""
    period = TOKENS / RATE

    async def client(user: int) -> list[Sample]:
        await asyncio.sleep(user * period / streams)  # the stagger itself, not a wait
        samples = [await stream_once("paced", TOKENS, user) for _ in range(ROUNDS + 1)]
        return samples[1:]

    clients = await asyncio.gather(*(client(user) for user in range(streams)))
    return [sample for samples in clients for sample in samples]


async def measure(stream_once: StreamOnce) -> tuple[list[list[Sample]], list[Sample]]:
    """Latency at each concurrency (paced engine), then a throughput burst (unpaced)."""
    await stream_once("paced", 4, 0)  # loads the models, warms every path
    await stream_once("unpaced", 4, 0)
    latency = [await steady(stream_once, streams) for streams in CONCURRENCY]
    burst = await asyncio.gather(
        *(stream_once("unpaced", THROUGHPUT_TOKENS, u) for u in range(THROUGHPUT_STREAMS))
    )
    return latency, list(burst)


# --- the baseline: the engine called directly ------------------------------------------


async def direct_stream(engine: Engine, model: str, tokens: int, user: int) -> Sample:
    request = InferRequest(
        request_id=f"r{user}-{time.perf_counter_ns()}",
        model=model,
        stream_subject="unused",
        messages=[ChatMessage(role="user", content=f"stream {user}")],
        params=SamplingParams(max_tokens=tokens),
    )
    job = Job(request=request, channel=TokenChannel(asyncio.get_running_loop()))
    started = time.perf_counter()
    engine.submit(job)
    first_at = last_at = 0.0
    while True:
        for event in await job.channel.take(30):
            now = time.perf_counter()
            if isinstance(event, TextChunk) and event.tokens:
                first_at = first_at or now
                last_at = now
            elif isinstance(event, Finished):
                count = event.usage.completion_tokens
                per_token = (last_at - first_at) / max(count - 1, 1)
                return first_at - started, per_token, count, started, last_at
            elif isinstance(event, Errored):
                raise RuntimeError(event.error.message)


async def direct(models: list[dict[str, Any]]) -> tuple[list[list[Sample]], list[Sample]]:
    engines: dict[str, Engine] = {}
    for model in models:
        script = ScriptProfile(**model["script"])
        profile = ModelProfile(id=model["id"], n_ctx=model["n_ctx"], parallel=64, script=script)
        engines[model["id"]] = Engine(profile, queue_depth=1024)
        await engines[model["id"]].start()
    try:
        return await measure(
            lambda model, tokens, user: direct_stream(engines[model], model, tokens, user)
        )
    finally:
        for engine in engines.values():
            await engine.stop()


# --- through the stack ------------------------------------------------------------------


async def through_stack(port: int) -> tuple[list[list[Sample]], list[Sample]]:
    async def stream_once(model: str, tokens: int, user: int) -> Sample:
        s = await stream_chat(port, body(model, tokens, user))
        return s.ttft_s, s.per_token_s, s.tokens, s.started, s.last_at

    return await measure(stream_once)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency_summary(direct_runs: list[Any], stack_runs: list[Any], streams: int) -> dict[str, Any]:
    d_ttft = [r[0] * 1000 for run in direct_runs for r in run]
    s_ttft = [r[0] * 1000 for run in stack_runs for r in run]
    d_tok = statistics.mean(r[1] * 1000 for run in direct_runs for r in run)
    s_tok = statistics.mean(r[1] * 1000 for run in stack_runs for r in run)
    summary = {
        "streams": streams,
        "direct_ttft_p50_ms": round(percentile(d_ttft, 0.5), 3),
        "stack_ttft_p50_ms": round(percentile(s_ttft, 0.5), 3),
        "direct_ttft_p99_ms": round(percentile(d_ttft, 0.99), 3),
        "stack_ttft_p99_ms": round(percentile(s_ttft, 0.99), 3),
        "direct_per_token_ms": round(d_tok, 3),
        "stack_per_token_ms": round(s_tok, 3),
    }
    summary["added_ttft_p50_ms"] = round(
        summary["stack_ttft_p50_ms"] - summary["direct_ttft_p50_ms"], 3
    )
    summary["added_ttft_p99_ms"] = round(
        summary["stack_ttft_p99_ms"] - summary["direct_ttft_p99_ms"], 3
    )
    summary["added_per_token_ms"] = round(s_tok - d_tok, 3)
    return summary


def tokens_per_s(burst: list[Sample]) -> float:
    """Completion tokens per second over the burst's wall time."""
    return sum(r[2] for r in burst) / (max(r[4] for r in burst) - min(r[3] for r in burst))


def run() -> list[dict[str, Any]]:
    models = profiles()
    # Baseline first, in this process, then the stack; never both at once.
    direct_latency, direct_burst = asyncio.run(direct(models))
    with tempfile.TemporaryDirectory() as folder:
        catalogue = write_models(Path(folder) / "models.toml", models, {})
        stack = Stack(Path(folder), catalogue)
        try:
            stack_latency, stack_burst = asyncio.run(through_stack(stack.port))
        finally:
            stack.stop()
    results: list[dict[str, Any]] = []
    for streams, d, s in zip(CONCURRENCY, direct_latency, stack_latency, strict=True):
        result = latency_summary([d], [s], streams)
        results.append(
            {"scenario": "overhead_latency", "rate_tok_s": RATE, "tokens": TOKENS, **result}
        )
    direct_tp_s = tokens_per_s(direct_burst)
    gateway_tok_s = tokens_per_s(stack_burst)
    results.append(
        {
            "scenario": "overhead_throughput",
            "streams": THROUGHPUT_STREAMS,
            "tokens_per_stream": THROUGHPUT_TOKENS,
            "direct_engine_tok_s": round(direct_tp_s),
            "gateway_tok_s": round(gateway_tok_s),
            "ratio": round(gateway_tok_s / direct_tp_s, 3),
            "target_gateway_tok_s": TARGETS["gateway_tok_s"],
        }
    )
    return results
