"""The engine-to-loop hand-off: everything pushed comes out in order, a waiting reader is
woken, and a reader that is not waiting costs the event loop no wakeup per token."""

from __future__ import annotations

import asyncio
import threading

import pytest

from cortex_neuron.channel import Finished, TextChunk, TokenChannel
from cortex_wire.messages import Usage


def chunk(text: str) -> TextChunk:
    return TextChunk(text=text, tokens=1)


def counting_wakeups(loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = loop.call_soon_threadsafe

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counted)
    return calls


async def test_tokens_pushed_while_no_one_waits_wake_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    wakeups = counting_wakeups(loop, monkeypatch)
    channel = TokenChannel(loop)
    pusher = threading.Thread(target=lambda: [channel.push(chunk(t)) for t in "abcde"])
    pusher.start()
    pusher.join()
    assert wakeups == []  # the reader was not waiting: a paced stream's pump, asleep
    assert [e.text for e in await channel.take(5) if isinstance(e, TextChunk)] == list("abcde")


async def test_a_waiting_reader_is_woken_once(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    wakeups = counting_wakeups(loop, monkeypatch)
    channel = TokenChannel(loop)
    taking = asyncio.create_task(channel.take(30))
    await asyncio.sleep(0)  # one turn of the loop: the reader runs up to its wait
    assert channel._waiting
    pusher = threading.Thread(target=lambda: [channel.push(chunk("x")), channel.push(chunk("y"))])
    pusher.start()
    pusher.join()
    events = await taking
    assert [e.text for e in events if isinstance(e, TextChunk)] == ["x", "y"]
    assert len(wakeups) == 1


async def test_take_gives_nothing_after_its_timeout_and_the_end_after_that() -> None:
    channel = TokenChannel(asyncio.get_running_loop())
    assert await channel.take(0.01) == []
    channel.push(Finished("stop", Usage()))
    [end] = await channel.take(0.01)
    assert isinstance(end, Finished)
