"""What the end-to-end scenarios share: `cortex up` in its own process tree, and a lean
streaming client (raw HTTP/1.1 over asyncio, so the client's own cost stays small next to
what it measures)."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ADMIN = "bench-admin-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_models(path: Path, models: list[dict[str, object]], aliases: dict[str, str]) -> Path:
    """A models.toml; `script` values become a [models.script] table."""
    lines: list[str] = []
    for model in models:
        lines.append("[[models]]")
        script = model.get("script")
        for key, value in model.items():
            if key != "script":
                lines.append(f"{key} = {json.dumps(value)}")
        if isinstance(script, dict):
            lines.append("[models.script]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in script.items()]
    lines.append("[aliases]")
    lines += [f"{json.dumps(alias)} = {json.dumps(target)}" for alias, target in aliases.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class Stack:
    """`cortex up` (embedded NATS, scheduler, neuron, gateway) as separate processes."""

    def __init__(
        self,
        folder: Path,
        models: Path | None = None,
        *,
        nats_port: int = -1,
        neuron: str = "",
        env: dict[str, str] | None = None,
    ) -> None:
        """`neuron`: extra lines for the [neuron] section (its name, threads, metrics)."""
        self.port = free_port()
        neuron = neuron or 'metrics_listen = ""'
        config = folder / "cortex.toml"
        config.write_text(
            f'state_dir = "{folder / "state"}"\n[nats]\nembedded_port = {nats_port}\n'
            f'[gateway]\nlisten = "127.0.0.1:{self.port}"\nmetrics_listen = ""\n'
            f'admin_keys = ["{ADMIN}"]\n[neuron]\nqueue_depth = 1024\n'
            f'{neuron}\n[scheduler]\nmetrics_listen = ""\n'
        )
        command = [sys.executable, "-m", "cortex_cli.main", "up", "--config", str(config)]
        if models is not None:
            command += ["--models", str(models)]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "CORTEX_LOG_LEVEL": "warning", **(env or {})},
        )
        # What the stack prints, as it prints it; None once it has closed its output.
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        printed: list[str] = []
        while not printed or "cortex up: ready" not in printed[-1]:
            try:
                line = self.lines.get(timeout=120)
            except queue.Empty:
                line = None
            if line is None:
                self.process.kill()
                raise RuntimeError("cortex up did not come up:\n" + "".join(printed[-30:]))
            printed.append(line)
        self.base = f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        for line in self.process.stdout or []:
            self.lines.put(line)
        self.lines.put(None)

    def admin(self, operation: str, model: str) -> None:
        httpx.post(
            f"{self.base}/admin/models/{operation}",
            json={"model": model},
            headers={"authorization": f"Bearer {ADMIN}"},
            timeout=120,
        ).raise_for_status()

    def stop(self) -> None:
        self.process.send_signal(2)
        self.process.wait(timeout=60)


@contextmanager
def serving(model: Path, parallel: int) -> Iterator[Stack]:
    """`cortex up` in a scratch folder, serving `model` as "smollm2" with `parallel` slots
    of 2048 tokens each."""
    with tempfile.TemporaryDirectory() as folder:
        entry = {"id": "smollm2", "path": str(model), "n_ctx": 2048, "parallel": parallel}
        stack = Stack(Path(folder), write_models(Path(folder) / "models.toml", [entry], {}))
        try:
            yield stack
        finally:
            stack.stop()


@dataclass
class Streamed:
    started: float
    first_at: float  # first content delta
    last_at: float
    tokens: int  # completion tokens: the usage chunk's, else one per content event
    events: int  # SSE events with content
    prompt_tokens: int = 0  # from the usage chunk
    cached_tokens: int = 0  # of those, how many the server had cached

    @property
    def ttft_s(self) -> float:
        return self.first_at - self.started

    @property
    def per_token_s(self) -> float:
        return (self.last_at - self.first_at) / max(self.tokens - 1, 1)


async def stream_chat(port: int, body: dict[str, object]) -> Streamed:
    """POST a streaming chat completion and time its content deltas."""
    payload = json.dumps({**body, "stream": True, "stream_options": {"include_usage": True}})
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            "POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\n"
            "content-type: application/json\r\nconnection: close\r\n"
            f"content-length: {len(payload)}\r\n\r\n{payload}"
        ).encode()
    )
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"{status.decode().strip()}: {(await reader.read()).decode()[:300]}")
    chunked = False
    while (header := await reader.readline()) not in (b"\r\n", b""):
        chunked |= header.lower().startswith(b"transfer-encoding: chunked")
    first_at = last_at = 0.0
    tokens = events = prompt_tokens = cached = 0
    pending = b""
    done = False
    while not done:
        if chunked:
            size = int((await reader.readline()).strip() or b"0", 16)
            if size == 0:
                break
            data = (await reader.readexactly(size + 2))[:-2]
        else:
            data = await reader.read(65536)
            if not data:
                break
        now = time.perf_counter()
        pending += data
        *complete, pending = pending.split(b"\n\n")
        for event in complete:
            if not event.startswith(b"data: "):
                continue
            if event == b"data: [DONE]":
                done = True
                break
            if first_at and b'"usage"' not in event:
                # Past the first token only timing and counting matter: the load
                # generator shares the machine, so it parses no more than it must.
                events += 1
                last_at = now
                continue
            chunk = json.loads(event[6:])
            if usage := chunk.get("usage"):
                tokens = usage["completion_tokens"]
                prompt_tokens = usage.get("prompt_tokens", 0)
                cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
            elif chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                events += 1
                first_at = first_at or now
                last_at = now
    writer.close()
    return Streamed(started, first_at, last_at, tokens or events, events, prompt_tokens, cached)
