"""Scenario `versus`: cortex against llama.cpp's own C++ `llama-server`, side by side on the
same model and machine, servers started one at a time.

- 8 streams at once: aggregate tokens/s and time to first token (p50, max), once with
  prompts both servers have cached (a warm-up sent them) and once with 8 new ~250-token
  prompts (each needs its prefill: first-token fairness);
- four clients behind one fresh ~900-token system prompt: their first-turn TTFT;
- agents: four conversations behind one fresh shared system prompt, four turns each (the
  history grows by each turn), run together: wall time, and TTFT of turns 2 and on.

The server binary comes from $CORTEX_LLAMA_SERVER, or .cache/llama-server/bin/llama-server
(build it from the llama.cpp inside the llama-cpp-python sdist:
`cmake -S vendor/llama.cpp -B .cache/llama-server -DLLAMA_CURL=OFF && cmake --build
.cache/llama-server --target llama-server`, ~12 min on 2 cores). Without one the scenario
says so and measures nothing.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from bench.concurrency import body as story
from bench.real_model import demo_gguf
from bench.shared import body as shared_body
from bench.stack import Streamed, free_port, serving, stream_chat

STREAMS = 8
AGENTS, TURNS = 4, 4
ROOT = Path(__file__).resolve().parents[1]


def server_binary() -> Path | None:
    named = os.environ.get("CORTEX_LLAMA_SERVER")
    path = Path(named) if named else ROOT / ".cache" / "llama-server" / "bin" / "llama-server"
    return path if path.is_file() else None


class LlamaServer:
    def __init__(self, binary: Path, model: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [str(binary), "-m", str(model), "--alias", "smollm2", "--port", str(self.port),
             "-np", str(STREAMS), "-c", str(2048 * STREAMS), "-t", str(os.cpu_count())],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).is_success:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.2)  # polling a starting process: it has no readiness event
        raise RuntimeError(f"{binary} did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def fresh_story(nonce: int, i: int) -> dict[str, object]:
    """A story request behind a system prompt no server has seen (~250 tokens)."""
    rules = " ".join(f"Rule {n}: write vividly, name the rule you follow." for n in range(12))
    system = {"role": "system", "content": f"Session {nonce}-{i}. {rules}"}
    request = story(i)
    return {**request, "messages": [system, *request["messages"]]}  # type: ignore[list-item]


async def agent(port: int, nonce: int, who: int) -> list[float]:
    """One conversation's turns; each turn's TTFT. The assistant's turns go back as a fixed
    text on both servers alike (the bench client does not keep what was generated)."""
    first = shared_body(nonce, f"Agent {who}: step 0.")
    messages: list[Any] = list(first["messages"])  # type: ignore[call-overload]
    ttfts = []
    for step in range(TURNS):
        streamed = await stream_chat(port, {**first, "messages": messages, "max_tokens": 16})
        ttfts.append(streamed.ttft_s)
        messages += [{"role": "assistant", "content": "Done."},
                     {"role": "user", "content": f"Agent {who}: step {step + 1}."}]  # fmt: skip
    return ttfts


def measure(port: int) -> dict[str, float]:
    async def streams() -> list[Streamed]:
        return await asyncio.gather(*(stream_chat(port, story(i)) for i in range(STREAMS)))

    async def fresh(nonce: int) -> list[Streamed]:
        bodies = [fresh_story(nonce, i) for i in range(STREAMS)]
        return await asyncio.gather(*(stream_chat(port, b) for b in bodies))

    async def shared(nonce: int) -> list[Streamed]:
        bodies = [shared_body(nonce, f"Name color number {n}.") for n in range(4)]
        return await asyncio.gather(*(stream_chat(port, b) for b in bodies))

    asyncio.run(streams())  # warm up
    started = time.perf_counter()
    done = asyncio.run(streams())
    wall = time.perf_counter() - started
    first_turn = asyncio.run(shared(int(time.time())))
    ttft = [s.ttft_s for s in done]
    started = time.perf_counter()
    new = asyncio.run(fresh(time.time_ns()))
    new_wall = time.perf_counter() - started

    async def agents(nonce: int) -> list[list[float]]:
        return await asyncio.gather(*(agent(port, nonce, who) for who in range(AGENTS)))

    started = time.perf_counter()
    turns = asyncio.run(agents(int(time.time()) + 1))
    agents_wall = time.perf_counter() - started
    return {
        "agents_wall_s": agents_wall,
        "agents_followup_ttft_p50_s": statistics.median(t for c in turns for t in c[1:]),
        "tok_s": sum(s.tokens for s in done) / wall,
        "ttft_p50_s": statistics.median(ttft),
        "ttft_max_s": max(ttft),
        "fresh_tok_s": sum(s.tokens for s in new) / new_wall,
        "fresh_ttft_p50_s": statistics.median(s.ttft_s for s in new),
        "shared_first_turn_p50_s": statistics.median(s.ttft_s for s in first_turn),
    }


def run() -> dict[str, Any]:
    binary = server_binary()
    if binary is None:
        return {"scenario": "versus_llama_server", "skipped": "no llama-server binary: see "
                "bench/versus.py for how to build one"}  # fmt: skip
    model = demo_gguf()
    server = LlamaServer(binary, model)
    try:
        theirs = measure(server.port)
    finally:
        server.stop()
    with serving(model, STREAMS) as stack:
        ours = measure(stack.port)
    return {
        "scenario": "versus_llama_server",
        "model": model.name,
        "streams": STREAMS,
        **{f"cortex_{k}": round(v, 3) for k, v in ours.items()},
        **{f"llama_server_{k}": round(v, 3) for k, v in theirs.items()},
        "tok_s_ratio": round(ours["tok_s"] / theirs["tok_s"], 3),
        "ttft_p50_ratio": round(ours["ttft_p50_s"] / theirs["ttft_p50_s"], 3),
        "fresh_tok_s_ratio": round(ours["fresh_tok_s"] / theirs["fresh_tok_s"], 3),
        "fresh_ttft_p50_ratio": round(ours["fresh_ttft_p50_s"] / theirs["fresh_ttft_p50_s"], 3),
        "shared_first_turn_ratio": round(
            ours["shared_first_turn_p50_s"] / theirs["shared_first_turn_p50_s"], 3
        ),
        "agents_wall_ratio": round(ours["agents_wall_s"] / theirs["agents_wall_s"], 3),
        "agents_followup_ttft_ratio": round(
            ours["agents_followup_ttft_p50_s"] / theirs["agents_followup_ttft_p50_s"], 3
        ),
        "targets": {
            "tok_s_ratio": ">= 1.0",
            "ttft_p50_ratio": "<= 1.0",
            "fresh_tok_s_ratio": ">= 1.0",
            "fresh_ttft_p50_ratio": "<= 1.0",
            "agents_wall_ratio": "<= 0.6",
            "agents_followup_ttft_ratio": "<= 0.5",
        },
    }
