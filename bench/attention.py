"""Scenario `attention`: llama.cpp's flash attention against plain attention on the raw
backend with SmolLM2, the measurement behind `flash_attn` (unset: off on the CPU). One
sequence holds a prompt of `context` tokens; a step then decodes `tokens` more after it
(1: a decode step; 21: a follow-up turn's prefill; 64 and 512: prefill chunks). Reports the
median step time each way and flash ÷ plain (above 1: flash attention is slower)."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from bench.kv import prefill_tokens
from bench.real_model import demo_gguf
from cortex_core.config import ModelProfile
from cortex_neuron.backend import Row
from cortex_neuron.llama_backend import LlamaBackend

CONTEXTS = (200, 800, 3000)
STEPS = (1, 21, 64, 512)
REPEATS = 3


def step_times(flash: bool, context: int) -> dict[int, float]:
    """Median seconds of a step of each size in STEPS after `context` cached tokens."""
    profile = ModelProfile(
        id="smollm2", path=str(demo_gguf()), n_ctx=4096, n_gpu_layers=0, flash_attn=flash
    )
    backend = LlamaBackend(profile, n_threads=os.cpu_count() or 1)
    try:
        text = " ".join(f"Rule {n}: answer plainly, keep it short." for n in range(400))
        tokens = backend.tokenize(text, add_bos=True, special=True)[: context + max(STEPS)]
        prefill_tokens(backend, 0, tokens[:context])
        times = {}
        for n in STEPS:
            runs = []
            for _ in range(REPEATS):
                backend.forget(0, context)
                started = time.perf_counter()
                backend.decode([Row(0, tokens[context : context + n], context, n - 1)])
                runs.append(time.perf_counter() - started)
            times[n] = statistics.median(runs)
        return times
    finally:
        backend.close()


def run() -> list[dict[str, Any]]:
    results = []
    for context in CONTEXTS:
        plain, flash = step_times(False, context), step_times(True, context)
        for n in STEPS:
            results.append({
                "scenario": "attention",
                "context_tokens": context,
                "step_tokens": n,
                "plain_ms": round(plain[n] * 1000, 1),
                "flash_ms": round(flash[n] * 1000, 1),
                "flash_over_plain": round(flash[n] / plain[n], 2),
            })  # fmt: skip
    return results
