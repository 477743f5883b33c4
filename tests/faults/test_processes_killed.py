"""Faults with real processes on a real nats-server, killed for real: a neuron mid-stream,
a neuron before its first token, a gateway mid-stream, the bus itself restarted."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cortex_wire import subjects
from tests.support.processes import ProcessFleet, process_fleet

pytestmark = pytest.mark.timeout(180)


def talker(tokens_per_s: float, reply: str = "tick tock ", repeat: bool = True) -> dict[str, Any]:
    return {
        "id": "talker",
        "n_ctx": 4096,
        "parallel": 4,
        "script": {"reply": reply, "tokens_per_s": tokens_per_s, "repeat": repeat},
    }


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[ProcessFleet]:
    async with process_fleet(tmp_path) as running:
        yield running


async def load_on(fleet: ProcessFleet, node: str, model: str = "talker") -> None:
    async with httpx.AsyncClient(base_url=fleet.gateway_url, timeout=60) as client:
        answer = await client.post(
            "/admin/models/load",
            json={"model": model, "node": node},
            headers={"authorization": "Bearer admin"},
        )
        assert answer.status_code == 200, answer.text
    await fleet.wait_for(lambda: fleet.ready(node, model))


async def fleet_of(fleet: ProcessFleet, neurons: list[str], model: dict[str, Any]) -> None:
    for name in neurons:
        await fleet.start_neuron(name, [model])
    await fleet.start_scheduler()
    await fleet.start_gateway(admin_keys=["admin"])
    for name in neurons:
        await load_on(fleet, name)


class Watcher:
    """Which neuron each request was sent to, as the bus shows it."""

    def __init__(self) -> None:
        self.sent_to: asyncio.Queue[str] = asyncio.Queue()

    async def on_infer(self, msg: Any) -> None:
        await self.sent_to.put(subjects.decode_token(msg.subject.split(".")[2]))


async def watch_infers(fleet: ProcessFleet) -> Watcher:
    watcher = Watcher()
    await fleet.nc.subscribe("cortex.neuron.*.infer", cb=watcher.on_infer)
    await fleet.nc.flush()
    return watcher


def events(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in lines if line.startswith("data: {")]


def chat(max_tokens: int | None = None, stream: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "talker",
        "messages": [{"role": "user", "content": "go"}],
        "stream": stream,
    }
    if max_tokens:
        body["max_tokens"] = max_tokens
    return body


async def test_a_neuron_killed_mid_stream_ends_the_stream_with_an_error(
    fleet: ProcessFleet,
) -> None:
    await fleet_of(fleet, ["n1", "n2"], talker(tokens_per_s=20))
    watcher = await watch_infers(fleet)
    lines: list[str] = []
    async with httpx.AsyncClient(base_url=fleet.gateway_url, timeout=30) as client:
        async with client.stream("POST", "/v1/chat/completions", json=chat()) as response:
            assert response.status_code == 200
            victim = await asyncio.wait_for(watcher.sent_to.get(), 10)
            lines_iter = response.aiter_lines()
            async for line in lines_iter:
                lines.append(line)
                if '"content"' in line:
                    break
            killed_at = time.monotonic()
            await fleet.kill(victim)
            async for line in lines_iter:
                lines.append(line)
            ended_after = time.monotonic() - killed_at
    chunks = events(lines)
    assert any(c.get("choices") and c["choices"][0]["delta"].get("content") for c in chunks)
    error = chunks[-1].get("error")
    assert error is not None and error["code"] == "stream_timeout", chunks[-1]
    assert "went silent" in error["message"]
    assert [line for line in lines if line][-1] == "data: [DONE]"
    print(f"stream ended {ended_after:.2f}s after the kill")
    # The dead neuron leaves the live picture once its heartbeats stop.
    async with httpx.AsyncClient(base_url=fleet.gateway_url, timeout=10) as client:

        async def served_by() -> list[str]:
            models = (await client.get("/v1/models")).json()["data"]
            return next(m for m in models if m["id"] == "talker")["served_by"]

        survivor = "n2" if victim == "n1" else "n1"
        deadline = time.monotonic() + 15
        while victim in (servers := await served_by()) and time.monotonic() < deadline:
            await fleet.next_change(timeout=1)  # the survivor's next heartbeat
        assert servers == [survivor]


async def test_a_request_whose_neuron_dies_before_its_first_token_moves_on(
    fleet: ProcessFleet,
) -> None:
    # Two seconds per decode step: the first token is two seconds away when the neuron dies.
    await fleet_of(fleet, ["n1", "n2"], talker(tokens_per_s=0.5, reply="ok", repeat=False))
    watcher = await watch_infers(fleet)

    async def ask() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=fleet.gateway_url, timeout=60) as client:
            answer = await client.post("/v1/chat/completions", json=chat(stream=False))
            assert answer.status_code == 200, answer.text
            return dict(answer.json())

    asking = asyncio.create_task(ask())
    victim = await asyncio.wait_for(watcher.sent_to.get(), 10)
    await fleet.kill(victim)
    answer = await asking
    assert answer["choices"][0]["message"]["content"] == "ok"
    assert (await watcher.sent_to.get()) != victim  # the retry went to the other replica
    assert "request_retried" in fleet.log_of("gateway")


async def test_a_gateway_killed_mid_stream_frees_the_neurons_slot(fleet: ProcessFleet) -> None:
    await fleet_of(fleet, ["n1"], talker(tokens_per_s=20))
    reader = await asyncio.create_subprocess_exec(
        "curl", "-sN", "--max-time", "60", f"{fleet.gateway_url}/v1/chat/completions",
        "-H", "content-type: application/json", "-d", json.dumps(chat()),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert reader.stdout is not None
    await reader.stdout.readline()  # the stream is flowing
    await fleet.wait_for(lambda: fleet.busy("n1", "talker") == 1)
    await fleet.kill("gateway")
    # No cancel can come from a dead gateway: the neuron notices its heartbeats stopped.
    await fleet.wait_for(lambda: fleet.busy("n1", "talker") == 0, timeout=20)
    assert "request_orphaned" in fleet.log_of("n1")
    # The client's connection died with the gateway.
    assert await asyncio.wait_for(reader.wait(), 10) != 0


async def test_services_ride_out_a_nats_restart(fleet: ProcessFleet) -> None:
    await fleet_of(fleet, ["n1"], talker(tokens_per_s=20))
    lines: list[str] = []
    body = {**chat(max_tokens=100), "stream_options": {"include_usage": True}}
    async with httpx.AsyncClient(base_url=fleet.gateway_url, timeout=30) as client:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            stream = response.aiter_lines()
            async for line in stream:
                lines.append(line)
                if '"content"' in line:
                    break
            await fleet.restart_nats()
            async for line in stream:
                lines.append(line)
    # The request in flight ended cleanly either way: whole and in order (the clients
    # buffer what they publish while reconnecting), or with an error in-band.
    chunks = events(lines)
    assert [line for line in lines if line][-1] == "data: [DONE]"
    if "error" not in chunks[-1]:
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
        )
        assert text == ("tick tock " * 10)[:100]
        assert chunks[-1]["usage"]["completion_tokens"] == 100
    # Every service reconnected by itself: the same gateway serves new requests.
    async with httpx.AsyncClient(base_url=fleet.gateway_url, timeout=60) as client:
        health = await client.get("/health?neuron=n1&scheduler=true&wait=30")
        assert health.status_code == 200, health.text
        answer = await client.post("/v1/chat/completions", json=chat(max_tokens=4, stream=False))
        assert answer.status_code == 200, answer.text
        assert answer.json()["usage"]["completion_tokens"] == 4
    for name in ("n1", "gateway", "scheduler"):
        assert "nats_reconnected" in fleet.log_of(name), name
