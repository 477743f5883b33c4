"""Scenario 3: 8 concurrent streams of SmolLM2-135M, aggregate decode tokens/s through
cortex (continuous batching, `parallel = 8`) ÷ llama-cpp-python's own OpenAI server
(`llama_cpp.server`, which serves one request at a time) on the same model and machine.
Also cortex at 8 streams ÷ cortex at 1 stream: what batching itself gains here."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.real_model import demo_gguf
from bench.stack import Streamed, free_port, serving, stream_chat

STREAMS = 8
TOKENS = 128
TARGET_RATIO = 4.0


def body(i: int) -> dict[str, object]:
    return {
        "model": "smollm2",
        "messages": [
            {"role": "user", "content": f"Write a long story about dragon number {i} who cooks."}
        ],
        "max_tokens": TOKENS,
        "temperature": 0,
    }


def aggregate(port: int, streams: int) -> float:
    """Completion tokens/s over the wall time of `streams` concurrent requests."""

    async def go() -> list[Streamed]:
        return await asyncio.gather(*(stream_chat(port, body(i)) for i in range(streams)))

    started = time.perf_counter()
    done = asyncio.run(go())
    return sum(s.tokens for s in done) / (time.perf_counter() - started)


class LlamaCppServer:
    def __init__(self, model: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "llama_cpp.server", "--model", str(model),
                "--model_alias", "smollm2", "--n_ctx", "2048", "--port", str(self.port),
                "--n_threads", str(os.cpu_count()), "--verbose", "false",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/v1/models", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)  # polling a starting process: it has no readiness event
        raise RuntimeError(
            "llama_cpp.server did not start (pip install 'llama-cpp-python[server]')"
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def run() -> dict[str, Any]:
    model = demo_gguf()
    server = LlamaCppServer(model)
    try:
        aggregate(server.port, 1)  # warm up
        server_1 = aggregate(server.port, 1)
        server_8 = aggregate(server.port, STREAMS)
    finally:
        server.stop()
    with serving(model, STREAMS) as stack:
        aggregate(stack.port, STREAMS)  # load, warm up
        cortex_1 = aggregate(stack.port, 1)
        cortex_8 = aggregate(stack.port, STREAMS)
    return {
        "scenario": "concurrency",
        "model": model.name,
        "streams": STREAMS,
        "tokens_per_stream": TOKENS,
        "cortex_tok_s": round(cortex_8, 1),
        "llama_cpp_server_tok_s": round(server_8, 1),
        "ratio": round(cortex_8 / server_8, 2),
        "target_ratio": TARGET_RATIO,
        "cortex_single_tok_s": round(cortex_1, 1),
        "llama_cpp_server_single_tok_s": round(server_1, 1),
        "batching_gain": round(cortex_8 / cortex_1, 2),
    }
