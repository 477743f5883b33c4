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


# --- the baseline: the engine called directly ------------------------------------------


async def direct_stream(engine: Engine, model: str, tokens: int, user: int) -> tuple[float, ...]:
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
                return first_at - started, (last_at - first_at) / max(count - 1, 1), count
            elif isinstance(event, Errored):
                raise RuntimeError(event.error.message)


async def direct(
    model: dict[str, Any], runs: list[tuple[int, int]]
) -> list[list[tuple[float, ...]]]:
    script = ScriptProfile(**model["script"])
    profile = ModelProfile(id=model["id"], n_ctx=model["n_ctx"], parallel=64, script=script)
    engine = Engine(profile, queue_depth=1024)
    await engine.start()
    try:
        results = []
        for streams, tokens in runs:
            results.append(
                await asyncio.gather(
                    *(direct_stream(engine, model["id"], tokens, i) for i in range(streams))
                )
            )
        return results
    finally:
        await engine.stop()


# --- through the stack ------------------------------------------------------------------


async def through_stack(port: int, model: str, runs: list[tuple[int, int]]) -> list[list[Any]]:
    results = []
    for streams, tokens in runs:
        done = await asyncio.gather(
            *(stream_chat(port, body(model, tokens, i)) for i in range(streams))
        )
        results.append([(s.ttft_s, s.per_token_s, s.tokens, s.started, s.last_at) for s in done])
    return results


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


def tokens_per_s(run: list[Any], direct: bool) -> float:
    if direct:
        return sum(r[2] for r in run) / max(r[0] + r[1] * r[2] for r in run)
    total = sum(r[2] for r in run)
    return total / (max(r[4] for r in run) - min(r[3] for r in run))


def run() -> list[dict[str, Any]]:
    paced, unpaced = profiles()
    latency_runs = [(c, TOKENS) for c in CONCURRENCY for _ in range(ROUNDS)]
    throughput_runs = [(THROUGHPUT_STREAMS, THROUGHPUT_TOKENS)]
    # Baseline first, in this process, then the stack; never both at once.
    direct_latency = asyncio.run(direct(paced, latency_runs))
    started = time.perf_counter()
    direct_tp = asyncio.run(direct(unpaced, throughput_runs))[0]
    direct_tp_s = sum(r[2] for r in direct_tp) / (time.perf_counter() - started)
    with tempfile.TemporaryDirectory() as folder:
        models = write_models(Path(folder) / "models.toml", [paced, unpaced], {})
        stack = Stack(Path(folder), models)
        try:
            asyncio.run(through_stack(stack.port, "paced", [(1, 4)]))  # load + warm up
            asyncio.run(through_stack(stack.port, "unpaced", [(1, 4)]))
            stack_latency = asyncio.run(through_stack(stack.port, "paced", latency_runs))
            stack_tp = asyncio.run(through_stack(stack.port, "unpaced", throughput_runs))[0]
        finally:
            stack.stop()
    results: list[dict[str, Any]] = []
    for index, streams in enumerate(CONCURRENCY):
        rounds = slice(index * ROUNDS, (index + 1) * ROUNDS)
        result = latency_summary(direct_latency[rounds], stack_latency[rounds], streams)
        results.append(
            {"scenario": "overhead_latency", "rate_tok_s": RATE, "tokens": TOKENS, **result}
        )
    gateway_tok_s = tokens_per_s(stack_tp, direct=False)
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
