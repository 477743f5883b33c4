"""Scenario `kv`: per-slot KV buffers (cortex's default) against llama.cpp's unified KV
cache, on the raw backend with SmolLM2: eight slots, each holding a ~900-token prompt,
decoding one token each per step. Two cases: every slot's prompt its own (conversations
that share nothing), and one prompt shared by all (prefilled once, then copied). Reports
the median decode step time, the prefill time, and unified ÷ per-slot ratios."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from bench.real_model import demo_gguf
from cortex_core.config import ModelProfile
from cortex_neuron.backend import Row
from cortex_neuron.llama_backend import LlamaBackend

SLOTS, PROMPT, STEPS = 8, 900, 48


def prefill_tokens(backend: LlamaBackend, seq: int, tokens: list[int]) -> None:
    """Decode `tokens` into `seq` from position 0, a batch at a time, keeping no logits."""
    for at in range(0, len(tokens), backend.n_batch):
        backend.decode([Row(seq, tokens[at : at + backend.n_batch], at)])


def measure(unified: bool, shared: bool) -> dict[str, float]:
    profile = ModelProfile(
        id="smollm2", path=str(demo_gguf()), n_ctx=2048, parallel=SLOTS, kv_unified=unified
    )
    backend = LlamaBackend(profile, n_threads=os.cpu_count() or 1)
    try:
        text = " ".join(f"Rule {n}: answer plainly, keep it short." for n in range(80))
        base = backend.tokenize(text, add_bos=True, special=True)[:PROMPT]
        prefill = 0.0
        for seq in range(SLOTS):
            if shared and seq:
                backend.share(0, seq, PROMPT)
                continue
            tokens = base if shared else [(t + 7 * seq) % 40_000 + 100 for t in base]
            started = time.perf_counter()
            prefill_tokens(backend, seq, tokens)
            prefill += time.perf_counter() - started
        steps = []
        for step in range(STEPS):
            rows = [Row(seq, [500 + step], PROMPT + step, seq) for seq in range(SLOTS)]
            started = time.perf_counter()
            backend.decode(rows)
            steps.append(time.perf_counter() - started)
        return {"step_ms": statistics.median(steps) * 1000, "prefill_s": prefill}
    finally:
        backend.close()


def run() -> list[dict[str, Any]]:
    results = []
    for shared in (False, True):
        separate, unified = measure(False, shared), measure(True, shared)
        results.append({
            "scenario": "kv_unified",
            "prompts": "one shared by all slots" if shared else "one per slot",
            "slots": SLOTS,
            "prompt_tokens": PROMPT,
            **{f"per_slot_{k}": round(v, 3) for k, v in separate.items()},
            **{f"unified_{k}": round(v, 3) for k, v in unified.items()},
            "step_ratio": round(unified["step_ms"] / separate["step_ms"], 3),
        })  # fmt: skip
    return results
