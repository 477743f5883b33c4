"""Scenario `versus`: cortex against llama.cpp's own C++ `llama-server`, side by side on the
same model and machine, servers started one at a time.

- 8 streams at once: aggregate tokens/s and time to first token (p50, max), once with
  prompts both servers have cached (a warm-up sent them; three rounds, the median rate)
  and once with 8 new ~250-token prompts (each needs its prefill: first-token fairness);
- four clients behind one fresh ~900-token system prompt: their first-turn TTFT;
- agents: four conversations behind one fresh shared system prompt, four turns each (the
  history grows by each turn), run together: wall time, and TTFT of turns 2 and on.

llama-server runs twice: as it ships (its defaults: the ratios), and with the attention
cortex runs on this machine (`-fa off` where cortex's `flash_attn` is unset and the model is
on the CPU: the `same_attention` ratios), so a gain from that choice is told apart from one
from scheduling. Where cortex does not repack weights (llama.cpp would use AMX, which
crashes) both runs pass `--no-repack`: llama-server crashed at start without it.

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
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import llama_cpp.llama_cpp as C

from bench.concurrency import body as story
from bench.real_model import demo_gguf
from bench.shared import body as shared_body
from bench.stack import Streamed, free_port, serving, stream_chat
from cortex_core.config import ModelProfile
from cortex_neuron.llama_backend import flash_attention, repack_weights, system_info

STREAMS = 8
ROUNDS = 3  # of the cached streams: one round's rate varies by a few % on a small machine
AGENTS, TURNS = 4, 4
ROOT = Path(__file__).resolve().parents[1]


def server_binary() -> Path | None:
    named = os.environ.get("CORTEX_LLAMA_SERVER")
    path = Path(named) if named else ROOT / ".cache" / "llama-server" / "bin" / "llama-server"
    return path if path.is_file() else None


class LlamaServer:
    def __init__(self, binary: Path, model: Path, flags: list[str]) -> None:
        self.port = free_port()
        self.log = tempfile.TemporaryFile(mode="w+")  # what it prints, for a failed start
        self.process = subprocess.Popen(
            [str(binary), "-m", str(model), "--alias", "smollm2", "--port", str(self.port),
             "-np", str(STREAMS), "-c", str(2048 * STREAMS), "-t", str(os.cpu_count()),
             *flags],
            stdout=self.log, stderr=subprocess.STDOUT,
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
        self.log.seek(0)
        tail = "".join(self.log.readlines()[-20:])
        self.stop()
        raise RuntimeError(f"{binary} did not start (exit {self.process.returncode}):\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.log.close()


def server_flags(model: Path) -> tuple[list[str], list[str]]:
    """llama-server's flags as it ships and with cortex's attention, each with
    `--no-repack` where cortex does not repack the model's weights on this CPU."""
    profile = ModelProfile(id="smollm2", path=str(model))
    shared = [] if repack_weights(profile, system_info()) else ["--no-repack"]
    plain = flash_attention(profile, bool(C.llama_supports_gpu_offload())) == (
        C.LLAMA_FLASH_ATTN_TYPE_DISABLED
    )
    return shared, [*shared, "-fa", "off" if plain else "auto"]


def against(binary: Path, model: Path, flags: list[str]) -> dict[str, float]:
    server = LlamaServer(binary, model, flags)
    try:
        return measure(server.port)
    finally:
        server.stop()


def fresh_story(nonce: int, i: int) -> dict[str, object]:
    """A story request behind a system prompt no server has seen (~250 tokens)."""
    rules = " ".join(f"Rule {n}: write vividly, name the rule you follow." for n in range(12))
    system = {"role": "system", "content": f"Session {nonce}-{i}. {rules}"}
    request = story(i)
    messages = request["messages"]
    assert isinstance(messages, list)
    return {**request, "messages": [system, *messages]}


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
    rates, ttft = [], []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        done = asyncio.run(streams())
        rates.append(sum(s.tokens for s in done) / (time.perf_counter() - started))
        ttft += [s.ttft_s for s in done]
    first_turn = asyncio.run(shared(int(time.time())))
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
        "tok_s": statistics.median(rates),
        "ttft_p50_s": statistics.median(ttft),
        "ttft_max_s": max(ttft),
        "fresh_tok_s": sum(s.tokens for s in new) / new_wall,
        "fresh_ttft_p50_s": statistics.median(s.ttft_s for s in new),
        "shared_first_turn_p50_s": statistics.median(s.ttft_s for s in first_turn),
    }


RATIOS = {  # name: (measure, target)
    "tok_s_ratio": ("tok_s", ">= 1.0"),
    "ttft_p50_ratio": ("ttft_p50_s", "<= 1.0"),
    "fresh_tok_s_ratio": ("fresh_tok_s", ">= 1.0"),
    "fresh_ttft_p50_ratio": ("fresh_ttft_p50_s", "<= 1.0"),
    "shared_first_turn_ratio": ("shared_first_turn_p50_s", ""),
    "agents_wall_ratio": ("agents_wall_s", "<= 0.6"),
    "agents_followup_ttft_ratio": ("agents_followup_ttft_p50_s", "<= 0.5"),
}


def run() -> dict[str, Any]:
    binary = server_binary()
    if binary is None:
        return {"scenario": "versus_llama_server", "skipped": "no llama-server binary: see "
                "bench/versus.py for how to build one"}  # fmt: skip
    model = demo_gguf()
    as_shipped, same_attention = server_flags(model)
    # cortex runs between the two: a machine whose speed drifts during the run tilts the
    # two ratios opposite ways instead of both the same way.
    theirs = against(binary, model, as_shipped)
    with serving(model, STREAMS) as stack:
        ours = measure(stack.port)
    alike = against(binary, model, same_attention)
    return {
        "scenario": "versus_llama_server",
        "model": model.name,
        "streams": STREAMS,
        "llama_server_flags": as_shipped,
        "llama_server_same_attention_flags": same_attention,
        **{f"cortex_{k}": round(v, 3) for k, v in ours.items()},
        **{f"llama_server_{k}": round(v, 3) for k, v in theirs.items()},
        **{f"llama_server_same_attention_{k}": round(v, 3) for k, v in alike.items()},
        **{name: round(ours[key] / theirs[key], 3) for name, (key, _) in RATIOS.items()},
        **{
            f"{name}_same_attention": round(ours[key] / alike[key], 3)
            for name, (key, _) in RATIOS.items()
        },
        "targets": {name: target for name, (_, target) in RATIOS.items() if target},
    }
