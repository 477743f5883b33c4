"""Scenario `routing`: two replicas of SmolLM2 on two neurons (one thread each), eight
conversations, each behind its own ~300-token system prompt, four turns each, all running
at once, so their turns interleave across the replicas. Run twice in one go: with the
gateway routing by cached prefix (`route_by_prefix`, the default) and without (always the
least busy replica).

- share of follow-up turns that landed on the replica holding their conversation (read off
  each answer's usage: a turn that finds its earlier turns cached landed on the holder;
  target ≥ 90 %);
- load balance: requests served by the busier replica over the other's (target ≤ 1.5);
- follow-up TTFT p50 and wall time, with and without prefix routing.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.real_model import demo_gguf
from bench.stack import ADMIN, Stack, free_port, stream_chat, write_models

CONVERSATIONS, TURNS = 8, 4
RULES = 12  # ~300 tokens of system prompt
NODES = ("left", "right")


def system_prompt(conversation: int, nonce: int) -> str:
    rules = " ".join(
        f"Rule {n}: answer plainly, name the rule you follow, keep it short." for n in range(RULES)
    )
    return f"Session {nonce}, conversation {conversation}. {rules}"


async def conversation(port: int, who: int, nonce: int) -> list[tuple[float, bool]]:
    """Each follow-up turn's TTFT and whether its earlier turns were found cached."""
    messages: list[dict[str, str]] = [
        {"role": "system", "content": system_prompt(who, nonce)},
        {"role": "user", "content": "Step 0."},
    ]
    followups: list[tuple[float, bool]] = []
    before = 0  # the previous turn's prompt tokens
    for step in range(TURNS):
        body = {"model": "smollm2", "messages": messages, "max_tokens": 8, "temperature": 0}
        streamed = await stream_chat(port, body)
        if step:
            followups.append((streamed.ttft_s, streamed.cached_tokens >= 0.9 * before))
        before = streamed.prompt_tokens
        messages += [{"role": "assistant", "content": "Done."},
                     {"role": "user", "content": f"Step {step + 1}."}]  # fmt: skip
    return followups


def served(metrics_port: int) -> float:
    """Requests a neuron finished, from its Prometheus endpoint."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("cortex_neuron_requests_total{")
    )


def neuron_section(name: str, metrics_port: int, models: Path | None = None) -> str:
    lines = [f'name = "{name}"', "n_threads = 1", f'metrics_listen = "127.0.0.1:{metrics_port}"']
    if models is not None:
        lines.append(f'models = "{models}"')
    return "\n".join(lines)


class TwoReplicas:
    """`cortex up` (with neuron "left") plus a second neuron ("right") on its bus, the
    model loaded on both."""

    def __init__(self, folder: Path, model: Path, by_prefix: bool) -> None:
        models = write_models(
            folder / "models.toml", [{"id": "smollm2", "path": str(model), "n_ctx": 4096,
                                      "parallel": 4}], {}
        )  # fmt: skip
        nats_port = free_port()
        self.metrics = {name: free_port() for name in NODES}
        env = {"CORTEX_GATEWAY_ROUTE_BY_PREFIX": "true" if by_prefix else "false"}
        self.stack = Stack(
            folder, models, nats_port=nats_port,
            neuron=neuron_section("left", self.metrics["left"]), env=env,
        )  # fmt: skip
        second = folder / "right.toml"
        second.write_text(
            f'state_dir = "{folder / "right-state"}"\n[nats]\nurl = "nats://127.0.0.1:{nats_port}"'
            f"\n[neuron]\n{neuron_section('right', self.metrics['right'], models)}\n"
        )
        self.neuron = subprocess.Popen(
            [sys.executable, "-m", "cortex_cli.main", "neuron", "--config", str(second)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "CORTEX_LOG_LEVEL": "warning"},
        )  # fmt: skip
        try:
            for node in NODES:
                self._load_on(node)
        except BaseException:
            self.stop()
            raise

    def _load_on(self, node: str) -> None:
        deadline = time.monotonic() + 120
        while True:  # the second neuron joins the bus on its own time: no event tells when
            reply = httpx.post(
                f"{self.stack.base}/admin/models/load",
                json={"model": "smollm2", "node": node},
                headers={"authorization": f"Bearer {ADMIN}"},
                timeout=120,
            )
            if reply.is_success or time.monotonic() > deadline:
                reply.raise_for_status()
                return
            time.sleep(0.5)

    def stop(self) -> None:
        self.neuron.terminate()
        self.neuron.wait(timeout=60)
        self.stack.stop()


def measure(model: Path, by_prefix: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        fleet = TwoReplicas(Path(folder), model, by_prefix)
        try:

            async def everyone() -> list[list[tuple[float, bool]]]:
                nonce = time.time_ns()
                return await asyncio.gather(
                    *(conversation(fleet.stack.port, who, nonce) for who in range(CONVERSATIONS))
                )

            started = time.perf_counter()
            turns = [turn for c in asyncio.run(everyone()) for turn in c]
            wall = time.perf_counter() - started
            loads = [served(fleet.metrics[node]) for node in NODES]
        finally:
            fleet.stop()
    return {
        "on_holder": sum(held for _, held in turns) / len(turns),
        "load_ratio": max(loads) / max(min(loads), 1.0),
        "followup_ttft_p50_s": statistics.median(t for t, _ in turns),
        "wall_s": wall,
    }


def run() -> dict[str, Any]:
    model = demo_gguf()
    routed = measure(model, by_prefix=True)
    blind = measure(model, by_prefix=False)
    return {
        "scenario": "routing",
        "model": model.name,
        "replicas": len(NODES),
        "conversations": CONVERSATIONS,
        "turns": TURNS,
        **{f"by_prefix_{k}": round(v, 3) for k, v in routed.items()},
        **{f"least_busy_{k}": round(v, 3) for k, v in blind.items()},
        "followup_ttft_ratio": round(
            routed["followup_ttft_p50_s"] / blind["followup_ttft_p50_s"], 3
        ),
        "wall_ratio": round(routed["wall_s"] / blind["wall_s"], 3),
        "targets": {"by_prefix_on_holder": ">= 0.9", "by_prefix_load_ratio": "<= 1.5"},
    }
