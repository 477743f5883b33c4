"""The GPU check's measurements, run once llama-cpp-python is installed (check.py sets that
up): `python -m bench.gpu.measure --shape SHAPE --out DIR [--streams 1,8,32] [--tokens N]`.

1. Writes the model (the demo's shape, random weights: model.py) and the designed tiny
   model, whose greedy answer is known in advance.
2. Direct baselines on llama-cpp-python, every layer offloaded: one stream through
   `Llama.generate`, and N streams as one batched decode per step (the raw backend).
3. `cortex up` (embedded nats-server) serving both: the neuron's heartbeat must report its
   devices (on a GPU host: NVML's name, total and free memory, capacity from the GPU, not
   the CPU budget); the designed model's answer must come back exactly; then one stream and
   N streams through the gateway, as ratios to the direct numbers.
4. A second copy of the model: NVML's free memory before and after each load against the
   footprint the neuron accounts for it.

Writes DIR/gpu-check.json and prints each finding as it goes. A check that fails is
recorded with why and the run goes on, so one run shows everything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.gpu.model import load_shape, write_random
from bench.stack import Stack, free_port, stream_chat, write_models
from cortex_core.config import ModelProfile
from cortex_neuron.backend import Row
from cortex_neuron.devices import discover_gpus
from cortex_wire import codec, subjects
from cortex_wire.messages import Heartbeat

REPLY = ["The", " card", " answers", " right"]  # the designed model's greedy answer
MIB = 1024 * 1024


def say(message: str) -> None:
    print(f"[gpu-check {time.strftime('%H:%M:%S')}] {message}", flush=True)


def prompt(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Write story number {i}, about a lighthouse."}]


# --- direct baselines on llama-cpp-python -------------------------------------------------


def direct_single(path: Path, tokens: int, gpu_layers: int, rounds: int = 3) -> dict[str, Any]:
    from bench.real_model import raw_llama, raw_run

    # The attention cortex runs (flash_attn unset): flash on a GPU, plain on the CPU.
    llm = raw_llama(
        path, n_ctx=2048, n_gpu_layers=gpu_layers, n_threads=os.cpu_count(),
        flash_attn=gpu_layers != 0,
    )  # fmt: skip
    try:
        runs = [raw_run(llm, tokens) for _ in range(rounds)]
    finally:
        llm.close()
    return {"tok_s": statistics.median(r["tok_s"] for r in runs)}


def direct_batched(path: Path, streams: int, tokens: int, gpu_layers: int) -> dict[str, Any]:
    """N sequences, each a 16-token prompt then `tokens` decode steps of one token each,
    every step one batched decode: what llama.cpp itself does for N streams."""
    from cortex_neuron.llama_backend import LlamaBackend

    profile = ModelProfile(
        id="direct", path=str(path), n_ctx=512, parallel=streams, n_gpu_layers=gpu_layers
    )
    backend = LlamaBackend(profile, n_threads=os.cpu_count() or 1)
    try:
        started = time.perf_counter()
        backend.decode(
            [Row(s, [100 + s + k for k in range(16)], 0, 16 * s + 15) for s in range(streams)]
        )
        for step in range(tokens - 1):
            backend.decode([Row(s, [500 + step], 16 + step, s) for s in range(streams)])
        wall = time.perf_counter() - started
    finally:
        backend.close()
    return {"tok_s": streams * tokens / wall}


# --- through cortex -----------------------------------------------------------------------


async def heartbeat(nats_port: int, timeout: float = 30) -> Heartbeat:
    import nats

    nc = await nats.connect(f"nats://127.0.0.1:{nats_port}")
    try:
        sub = await nc.subscribe(subjects.HEARTBEATS)
        msg = await sub.next_msg(timeout=timeout)
        return codec.decode(msg.data, Heartbeat)
    finally:
        await nc.close()


def through_cortex(port: int, model: str, streams: int, tokens: int) -> dict[str, Any]:
    async def run() -> list[Any]:
        bodies = [
            {"model": model, "messages": prompt(i), "max_tokens": tokens, "temperature": 0}
            for i in range(streams)
        ]
        return await asyncio.gather(*(stream_chat(port, b) for b in bodies))

    started = time.perf_counter()
    done = asyncio.run(run())
    wall = time.perf_counter() - started
    if streams == 1:
        return {"tok_s": 1 / done[0].per_token_s, "ttft_s": done[0].ttft_s,
                "tokens": done[0].tokens}  # fmt: skip
    return {"tok_s": sum(s.tokens for s in done) / wall,
            "ttft_p50_s": statistics.median(s.ttft_s for s in done),
            "tokens": sum(s.tokens for s in done)}  # fmt: skip


def answer(port: int, model: str) -> str:
    import httpx

    reply = httpx.post(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        json={"model": model, "messages": prompt(0), "max_tokens": 16, "temperature": 0},
        timeout=120,
    )
    reply.raise_for_status()
    content: str = reply.json()["choices"][0]["message"]["content"]
    return content


def nvml_free_mb() -> int | None:
    """Free memory on GPU 0 now, as NVML measures it (None without a GPU)."""
    gpus = discover_gpus()
    return gpus[0].free_mb if gpus else None


def footprints(beat: Heartbeat) -> dict[str, int]:
    return {m.id: m.footprint_mb for m in beat.models if m.state == "ready"}


# --- the run ------------------------------------------------------------------------------


class Findings:
    """What the run found, each check with its outcome, saved to `target` after each (the
    device call is killed at its limit, and only what is written by then comes back). A
    failing step is recorded and the run goes on; past `deadline` (time.time()) the steps
    left are skipped, so the run ends with its findings written."""

    def __init__(self, target: Path, deadline: float) -> None:
        self.target = target
        self.deadline = deadline
        self.data: dict[str, Any] = {"checks": {}, "skipped": []}
        self.failed: list[str] = []

    def check(self, name: str, ok: bool, detail: Any) -> None:
        self.data["checks"][name] = {"ok": ok, "detail": detail}
        say(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
        if not ok:
            self.failed.append(name)
        self.save()

    def step(self, name: str, action: Callable[[], Any]) -> Any:
        if time.time() > self.deadline:
            say(f"skip {name}: past the deadline")
            self.data["skipped"].append(name)
            return None
        started = time.perf_counter()
        try:
            value = action()
        except Exception as error:
            self.check(name, False, f"{type(error).__name__}: {error}")
            return None
        self.data.setdefault("seconds", {})[name] = round(time.perf_counter() - started, 2)
        self.save()
        return value

    def save(self) -> None:
        self.target.write_text(json.dumps({**self.data, "failed": self.failed}, indent=2) + "\n")


def measure(args: argparse.Namespace, work: Path) -> Findings:
    import llama_cpp

    from tests.support.tiny_gguf import build_tiny_gguf

    found = Findings(args.out / "measure.json", args.deadline)
    offload = bool(llama_cpp.llama_supports_gpu_offload())
    found.data["llama_cpp"] = {"version": llama_cpp.__version__, "gpu_offload": offload}
    found.check("cuda_build", offload == args.cuda, f"GPU offload supported: {offload}")
    layers = -1 if args.cuda else 0
    model = found.step("write_model", lambda: write_random(load_shape(args.shape), work / "r.gguf"))
    tiny = build_tiny_gguf(work / "designed.gguf", REPLY)
    if model is None:
        return found
    say(f"model written: {model.stat().st_size // MIB} MiB")
    direct: dict[str, Any] = {"1": found.step("direct_1", lambda: direct_single(
        model, args.tokens, layers))}  # fmt: skip
    for n in (n for n in args.streams if n > 1):
        direct[str(n)] = found.step(
            f"direct_{n}", partial(direct_batched, model, n, args.tokens, layers)
        )
    say(f"direct: {direct}")
    top = max(args.streams)
    entries = [
        {"id": "random", "path": str(model), "n_ctx": 512, "parallel": top, "n_gpu_layers": layers},
        {"id": "random-copy", "path": str(model), "n_ctx": 512, "parallel": 1,
         "n_gpu_layers": layers},
        {"id": "designed", "path": str(tiny.path), "n_ctx": 512, "n_gpu_layers": layers},
    ]  # fmt: skip
    folder = work / "stack"
    folder.mkdir()
    nats_port = free_port()
    free_before = nvml_free_mb()
    models = write_models(folder / "models.toml", entries, {})
    stack = found.step("stack_up", lambda: Stack(folder, models, nats_port=nats_port))
    beat = None
    if stack is not None:
        beat = found.step("heartbeat", lambda: asyncio.run(heartbeat(nats_port)))
    if stack is None or beat is None:
        if stack is not None:
            stack.stop()
        return found
    try:
        devices = [{"name": d.name, "kind": d.kind, "total_mb": d.total_mb,
                    "free_mb": d.free_mb} for d in beat.devices]  # fmt: skip
        found.data["heartbeat"] = {"devices": devices, "memory_budget_mb": beat.memory_budget_mb}
        gpus = [d for d in beat.devices if d.kind == "cuda"]
        if args.cuda:
            named = bool(gpus) and all(d.name and d.total_mb > 0 and d.free_mb > 0 for d in gpus)
            found.check("nvml_devices", named, devices)
            budget = sum(d.total_mb for d in gpus)
            found.check(
                "capacity_from_gpu",
                beat.memory_budget_mb == budget > 0,
                f"capacity {beat.memory_budget_mb} MiB, GPUs' total {budget} MiB",
            )
        else:
            found.check("cpu_device", [d.kind for d in beat.devices] == ["cpu"], devices)
        got = found.step("designed_answer", lambda: answer(stack.port, "designed"))
        found.check("designed_answer", got == "".join(REPLY), f"{got!r}")
        free_context = nvml_free_mb()  # the neuron's CUDA context is made at its first load
        found.step("load", partial(stack.admin, "load", "random"))
        free_one = nvml_free_mb()
        ours: dict[str, Any] = {}
        for n in args.streams:
            ours[str(n)] = found.step(
                f"cortex_{n}", partial(through_cortex, stack.port, "random", n, args.tokens)
            )
        say(f"cortex: {ours}")
        found.data["throughput"] = {
            n: {"cortex": ours[n], "direct": direct.get(n),
                "ratio": round(ours[n]["tok_s"] / direct[n]["tok_s"], 3)
                if ours.get(n) and direct.get(n) else None}
            for n in ours
        }  # fmt: skip
        found.step("load_copy", partial(stack.admin, "load", "random-copy"))
        free_two = nvml_free_mb()
        after = found.step("heartbeat_after", lambda: asyncio.run(heartbeat(nats_port)))
        held = footprints(after) if after else {}
        found.data["vram"] = vram([free_before, free_context, free_one, free_two], held)
        say(f"vram: {found.data['vram']}")
    finally:
        stack.stop()
    return found


def vram(free: list[int | None], held: dict[str, int]) -> dict[str, Any]:
    """What each load took by NVML's free memory (before the stack, after the designed
    model's load, after the model's, after its second copy) against what the neuron
    accounts for each. The first drop is mostly the neuron's CUDA context."""
    if any(f is None for f in free):
        return {"measured": None, "accounted_mb": held}
    before, context, one, two = (int(f or 0) for f in free)
    copy = held.get("random-copy")
    return {
        "free_mb": free,
        "context_and_designed_mb": before - context,
        "first_copy_mb": context - one,
        "second_copy_mb": one - two,
        "accounted_mb": held,
        "second_copy_measured_over_accounted": round((one - two) / copy, 3) if copy else None,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu.measure")
    parser.add_argument("--shape", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--streams", default="1,8,32")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--cuda", action="store_true", help="expect CUDA offload and GPUs")
    parser.add_argument("--deadline", type=float, default=float("inf"),
                        help="time.time() after which the steps left are skipped")  # fmt: skip
    args = parser.parse_args(argv)
    args.streams = sorted({int(n) for n in args.streams.split(",")} | {1})
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        found = measure(args, Path(folder))
    found.save()
    say(f"written {found.target}; failed: {found.failed}; skipped: {found.data['skipped']}")
    return 1 if found.failed or found.data["skipped"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
