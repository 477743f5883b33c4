"""`cortex watch [PATTERN]`: every bus message under `cortex.` as it happens, one line each,
decoded — the `nats sub 'cortex.>'` view for people without the nats CLI."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

from nats.errors import BadSubjectError
from rich.console import Console
from rich.text import Text

from cortex_cli.fleet_commands import UsageError
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


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` is no NATS subscription subject (pure), or None: the rules nats-py
    checks on subscribe, said before any connection is made."""
    if not pattern:
        return "it is empty"
    if any(c.isspace() for c in pattern):
        return "subjects cannot contain spaces or other whitespace"
    tokens = pattern.split(".")
    for index, token in enumerate(tokens):
        if not token:
            return "it has an empty token (a leading, trailing or doubled '.')"
        if token == ">" and index != len(tokens) - 1:
            return "'>' may only be the last token"
        if token not in (">", "*") and ("*" in token or ">" in token):
            return "'*' and '>' must be whole tokens (e.g. 'cortex.*.heartbeat')"
    return None


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
        devices = ", ".join(  # used / total, as `cortex status` writes it
            f"{d.get('name')} {(d.get('total_mb') or 0) - (d.get('free_mb') or 0)}"
            f"/{d.get('total_mb')} MiB used"
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


def watch_line(stamp: str, subject: str, payload: bytes) -> Text:
    """One printed line: time, subject (styled by kind), summary. Built as Text, never as
    markup, so a subject of a kind without a style, or a payload holding '[', prints as is."""
    style = STYLES.get(_kind(subject), "")
    return Text.assemble(
        stamp, " ", (readable_subject(subject), style), " ", summarize(subject, payload)
    )


async def watch(nc: Any, pattern: str, console: Console) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def show(msg: Any) -> None:
        stamp = (
            time.strftime("%H:%M:%S", time.localtime()) + f".{int(time.time() * 1000) % 1000:03d}"
        )
        console.print(watch_line(stamp, msg.subject, msg.data), soft_wrap=True)

    try:
        sub = await nc.subscribe(pattern, cb=show)
    except BadSubjectError:  # pattern_problem should have said so before connecting
        raise UsageError(f"invalid subject pattern {pattern!r}") from None
    await nc.flush()  # subscribed at the server: whatever is sent after the line below shows
    console.print(f"watching {pattern} (Ctrl-C stops)", style="dim")
    await stop.wait()
    await sub.unsubscribe()
