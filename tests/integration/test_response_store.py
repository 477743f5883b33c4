"""The stored-responses bucket on a real nats-server: kept with a TTL, bounded in size
(the oldest go first), and a clear answer where the bus has no JetStream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest

from cortex_core.nats_server import EmbeddedNats
from cortex_gateway.errors import ApiError
from cortex_gateway.response_store import ResponseStore
from cortex_wire import subjects
from cortex_wire.messages import ChatMessage, StoredResponse


@pytest.fixture
def own_bus(tmp_path: Path) -> Iterator[EmbeddedNats]:
    bus = EmbeddedNats("127.0.0.1", -1, tmp_path / "nats")
    bus.start()
    yield bus
    bus.stop()


@pytest.fixture
async def nc(own_bus: EmbeddedNats) -> AsyncIterator[nats.NATS]:
    client = await nats.connect(own_bus.url)
    yield client
    await client.close()


def record(number: int, size: int = 0) -> StoredResponse:
    text = "x" * size
    return StoredResponse(
        id=f"resp_{number}", model="m", body={"id": f"resp_{number}", "output_text": text},
        conversation=[ChatMessage(role="user", content=text)],
    )  # fmt: skip


async def test_responses_are_kept_and_removed(nc: nats.NATS) -> None:
    store = ResponseStore(nc, ttl_s=3600, max_mb=8)
    await store.put(record(1))
    kept = await store.get("resp_1")
    assert kept == record(1)
    await store.delete("resp_1")
    with pytest.raises(ApiError) as caught:
        await store.get("resp_1")
    assert caught.value.status == 404
    with pytest.raises(ApiError):
        await store.delete("resp_1")
    info = await nc.jetstream().stream_info(f"KV_{subjects.RESPONSES_BUCKET}")
    assert info.config.max_age == pytest.approx(3600)
    assert info.config.max_bytes == 8 * 1024 * 1024


async def test_a_full_store_lets_its_oldest_responses_go(nc: nats.NATS) -> None:
    store = ResponseStore(nc, ttl_s=3600, max_mb=1)
    for number in range(8):  # about 2 MB in all, into 1 MB
        await store.put(record(number, size=120_000))
    assert (await store.get("resp_7")).id == "resp_7"
    with pytest.raises(ApiError):
        await store.get("resp_0")


async def test_a_bus_without_jetstream_says_so(tmp_path: Path) -> None:
    bus = EmbeddedNats("127.0.0.1", -1, tmp_path / "plain", jetstream=False)
    bus.start()
    try:
        client = await nats.connect(bus.url)
        try:
            with pytest.raises(ApiError) as caught:
                await ResponseStore(client, ttl_s=60, max_mb=1).put(record(1))
            assert caught.value.status == 503 and "cannot be stored" in caught.value.message
        finally:
            await client.close()
    finally:
        bus.stop()
