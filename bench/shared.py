"""Scenario `shared` on the real SmolLM2-135M-Instruct: four clients arrive together behind
one shared system prompt that nobody has sent before (the shape of agents starting
sessions), against one client alone behind a fresh prompt of the same length, in the same
run. With prefix sharing the four wait for one prefill and copy it: their time to first
token should stay near the lone client's (target: at most 1.3 times), not four prefills' worth.
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from bench.real_model import demo_gguf
from bench.stack import serving, stream_chat

CLIENTS = 4
RULES = 40  # ~900 tokens of system prompt


def system_prompt(nonce: int) -> str:
    """A fresh prompt each time (the nonce leads it, so no earlier cache holds any of it)."""
    rules = " ".join(
        f"Rule {n}: answer plainly, name the rule you follow, keep it short." for n in range(RULES)
    )
    return f"Session {nonce}. {rules}"


def body(nonce: int, question: str) -> dict[str, object]:
    messages = [
        {"role": "system", "content": system_prompt(nonce)},
        {"role": "user", "content": question},
    ]
    return {"model": "smollm2", "messages": messages, "max_tokens": 8, "temperature": 0}


async def ttfts(port: int, bodies: list[dict[str, object]]) -> list[float]:
    streamed = await asyncio.gather(*(stream_chat(port, b) for b in bodies))
    return [s.ttft_s for s in streamed]


def run(rounds: int = 3) -> dict[str, Any]:
    path = demo_gguf()
    alone: list[float] = []
    together: list[float] = []
    with serving(path, CLIENTS) as stack:
        asyncio.run(ttfts(stack.port, [body(0, "Hi")]))  # warm-up (and the load)
        nonce = 1
        for _ in range(rounds):
            alone += asyncio.run(ttfts(stack.port, [body(nonce, "Name a color.")]))
            questions = [f"Name color number {n}." for n in range(CLIENTS)]
            together += asyncio.run(ttfts(stack.port, [body(nonce + 1, q) for q in questions]))
            nonce += 2
    med = statistics.median
    return {
        "scenario": "shared_prompt",
        "model": path.name,
        "clients": CLIENTS,
        "rounds": rounds,
        "alone_ttft_ms": round(med(alone) * 1000, 1),
        "together_ttft_p50_ms": round(med(together) * 1000, 1),
        "together_ttft_max_ms": round(max(together) * 1000, 1),
        "ratio": round(med(together) / med(alone), 3),
        "target_ratio": 1.3,
    }
