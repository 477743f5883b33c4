"""`cortex watch [PATTERN]`: every bus message under `cortex.` as it happens, one line each,
decoded — the `nats sub 'cortex.>'` view for people without the nats CLI."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from cortex_wire import subjects

# Color per kind of subject, so a busy bus stays readable.
STYLES = {
    "heartbeat": "dim",
    "stream": "cyan",
    "event": "bold yellow",
    "sched": "magenta",
    "infer": "green",
    "control": "bold magenta",
    "cancel": "red",
}


def _kind(subject: str) -> str:
    parts = subject.split(".")
    if len(parts) >= 4 and parts[1] in ("neuron", "gateway"):
        return parts[3]
    return parts[1] if len(parts) > 1 else ""


def summarize(subject: str, payload: bytes) -> str:
    """One readable line for a bus message (pure)."""
    try:
        body: Any = json.loads(payload) if payload else None
    except ValueError:
        return f"{len(payload)} bytes (not JSON)"
    kind = _kind(subject)
    if kind == "heartbeat" and isinstance(body, dict) and "gateway" in body:
        return f"gateway {body.get('gateway')} alive, following {body.get('streams', 0)} streams"
    if kind == "heartbeat" and isinstance(body, dict):
        models = ", ".join(
            f"{m.get('id')}={m.get('state')}"
            + (
                f" {m.get('busy', 0)}+{m.get('queued', 0)}q"
                if m.get("busy") or m.get("queued")
                else ""
            )
            for m in body.get("models", [])
        )
        devices = ", ".join(
            f"{d.get('name')} {d.get('free_mb')}/{d.get('total_mb')} MiB"
            for d in body.get("devices", [])
        )
        return f"{body.get('node')} #{body.get('seq')} [{devices}] models: {models or 'none'}"
    if kind == "stream" and isinstance(body, dict):
        kind_of_frame = body.get("type")
        if kind_of_frame in ("delta", "reasoning", "tool_call"):
            text = json.dumps(body.get("text", ""), ensure_ascii=False)
            return f"{kind_of_frame} #{body.get('seq')} {text}"
        if kind_of_frame == "done":
            usage = body.get("usage", {})
            return (
                f"done #{body.get('seq')} {body.get('finish_reason')} "
                f"prompt={usage.get('prompt_tokens')} completion={usage.get('completion_tokens')}"
            )
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def readable_subject(subject: str) -> str:
    """The subject with its encoded tokens shown as the ids they carry."""
    out = []
    for token in subject.split("."):
        try:
            out.append(subjects.decode_token(token) if "~" in token else token)
        except ValueError:
            out.append(token)
    return ".".join(out)


async def watch(nc: Any, pattern: str, console: Console) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def show(msg: Any) -> None:
        stamp = (
            time.strftime("%H:%M:%S", time.localtime()) + f".{int(time.time() * 1000) % 1000:03d}"
        )
        style = STYLES.get(_kind(msg.subject), "")
        subject = escape(readable_subject(msg.subject))
        console.print(
            f"{stamp} [{style}]{subject}[/] {escape(summarize(msg.subject, msg.data))}",
            soft_wrap=True,
        )

    sub = await nc.subscribe(pattern, cb=show)
    console.print(f"watching {pattern} (Ctrl-C stops)", style="dim")
    await stop.wait()
    await sub.unsubscribe()
