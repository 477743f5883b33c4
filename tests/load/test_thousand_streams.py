"""Load on one gateway (scripted engine, loopback only, bounded in count and time): a
thousand streams at once all end properly, and a client that stops reading is cut off
without hurting anyone else."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ProcessFleet, process_fleet

pytestmark = pytest.mark.timeout(300)

STREAMS = 1000
TOKENS = 20
REPLY = "The quick brown fox. "
SLOTS, QUEUE = 64, 192


@dataclass
class Outcome:
    status: int = 0
    retry_after: str | None = None
    text: str = ""
    finish: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    done: bool = False  # saw data: [DONE]
    error: dict[str, object] | None = None


async def stream_once(port: int, user: int) -> Outcome:
    """One streaming chat request over a raw connection; every byte of it checked."""
    body = json.dumps({
        "model": "fast", "max_tokens": TOKENS, "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": f"user {user}"}],
    })  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n{body}".encode()
    )
    raw = await reader.read()  # the whole response: connection: close
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    outcome = Outcome(status=int(lines[0].split()[1]))
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    outcome.retry_after = headers.get("retry-after")
    if outcome.status != 200:
        return outcome
    if headers.get("transfer-encoding") == "chunked":
        payload = dechunk(payload)
    for event in payload.decode().split("\n\n"):
        if event == "data: [DONE]":
            outcome.done = True
        elif event.startswith("data: "):
            chunk = json.loads(event[6:])
            if "error" in chunk:
                outcome.error = chunk["error"]
            for choice in chunk.get("choices", []):
                outcome.text += choice["delta"].get("content") or ""
                outcome.finish = choice.get("finish_reason") or outcome.finish
            outcome.usage = chunk.get("usage") or outcome.usage
    return outcome


def dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return bytes(out)


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[ProcessFleet]:
    async with process_fleet(tmp_path) as running:
        model = {
            "id": "fast", "n_ctx": 4096, "parallel": SLOTS, "max_queue_depth": QUEUE,
            "script": {"reply": REPLY, "repeat": True, "tokens_per_s": 200},
        }  # fmt: skip
        # Endless and quick: enough to fill any socket buffer of a client that stops reading.
        hose = {
            "id": "hose", "n_ctx": 10_000_000, "parallel": 2,
            "script": {"reply": REPLY, "repeat": True, "tokens_per_s": 5000},
        }  # fmt: skip
        await running.start_neuron("n1", [model, hose])
        await running.start_scheduler()
        # A neuron starved of CPU by a loaded machine must not end the stuck client's stream
        # as "silent" before its stall is noticed: the idle limit sits well above the stall.
        await running.start_gateway(client_stall_timeout_s=2.0, stream_idle_timeout_s=10.0)
        yield running


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))


async def idle(fleet: ProcessFleet) -> None:
    """Until the neuron reports nothing running or queued for the model."""
    await fleet.wait_for(lambda: fleet.busy("n1", "fast") == 0, timeout=60)


async def burst(port: int) -> list[Outcome]:
    return await asyncio.wait_for(
        asyncio.gather(*(stream_once(port, user) for user in range(STREAMS))), 240
    )


async def test_a_thousand_streams_at_once_all_end_properly(fleet: ProcessFleet) -> None:
    port = int(fleet.gateway_url.rsplit(":", 1)[1])
    expected = (REPLY * TOKENS)[:TOKENS]  # one token per byte
    warm = await stream_once(port, -1)
    assert warm.text == expected, warm
    await idle(fleet)
    gateway_pid = fleet.processes["gateway"].pid
    before = rss_kib(gateway_pid)
    outcomes = await burst(port)
    served = [o for o in outcomes if o.status == 200]
    refused = [o for o in outcomes if o.status != 200]
    # None lost, none hung: every one is either a whole answer or a refusal that says
    # when to come back.
    assert len(served) + len(refused) == STREAMS
    for outcome in served:
        assert outcome.error is None, outcome
        assert outcome.text == expected and outcome.finish == "length" and outcome.done
        assert outcome.usage["completion_tokens"] == TOKENS
    for outcome in refused:
        assert outcome.status in (429, 503) and outcome.retry_after, outcome
    assert len(served) >= SLOTS + QUEUE  # admission let a full house in
    print(f"{len(served)} served, {len(refused)} refused with Retry-After")

    # Afterwards nothing is left running, and the gateway holds on to nothing: a second
    # burst leaves its memory where the first did (Python keeps freed arenas, so the
    # first burst's high-water mark is the baseline).
    await idle(fleet)
    first = rss_kib(gateway_pid)
    again = await burst(port)
    assert sum(o.status == 200 for o in again) >= SLOTS + QUEUE
    await idle(fleet)
    second = rss_kib(gateway_pid)
    print(f"gateway RSS: {before} KiB before, {first} after one burst, {second} after two")
    assert second < first + 16 * 1024


async def test_a_client_that_stops_reading_is_cut_off_and_nobody_else_notices(
    fleet: ProcessFleet,
) -> None:
    port = int(fleet.gateway_url.rsplit(":", 1)[1])
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", port))
    body = json.dumps({
        "model": "hose", "stream": True, "messages": [{"role": "user", "content": "go"}]
    })  # fmt: skip
    stuck.sendall(
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n{body}".encode()
    )
    try:
        # It never reads. Its generation runs until the gateway gives up on it...
        await fleet.wait_for(lambda: fleet.busy("n1", "hose") == 1, timeout=30)
        # ...while another client is served as usual.
        other = await stream_once(port, 1)
        assert other.status == 200 and other.text == (REPLY * TOKENS)[:TOKENS]
        await fleet.wait_for(lambda: fleet.busy("n1", "hose") == 0, timeout=60)
    finally:
        stuck.close()
    assert "client_too_slow" in fleet.log_of("gateway")
    async with httpx.AsyncClient(base_url=fleet.gateway_url) as client:
        assert (await client.get("/health")).status_code == 200
