"""Several choices for one prompt: seeds, usage, merged bodies and interleaved streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest

from cortex_gateway.choices import choice_seed, interleaved, merged_body, total_usage
from cortex_wire.messages import Usage


def test_choice_i_samples_with_the_seed_plus_i() -> None:
    assert [choice_seed(7, i) for i in range(3)] == [7, 8, 9]
    assert choice_seed(None, 2) is None  # unseeded choices each draw their own


def test_usage_counts_the_prompt_once_and_every_completion() -> None:
    usages = [Usage(prompt_tokens=10, completion_tokens=n, reasoning_tokens=1) for n in (3, 4)]
    assert total_usage(usages) == Usage(prompt_tokens=10, completion_tokens=7, reasoning_tokens=2)


def test_a_batch_counts_each_prompt_once() -> None:
    """Two prompts, two choices each: the choices of one prompt come together."""
    usages = [Usage(prompt_tokens=p, cached_tokens=c, completion_tokens=1)
              for p, c in ((10, 4), (10, 4), (6, 0), (6, 0))]  # fmt: skip
    assert total_usage(usages, per_prompt=2) == Usage(
        prompt_tokens=16, cached_tokens=4, completion_tokens=4
    )

    def body(prompt: int, cached: int) -> dict[str, object]:
        usage = {"prompt_tokens": prompt, "completion_tokens": 1, "total_tokens": prompt + 1,
                 "prompt_tokens_details": {"cached_tokens": cached}}  # fmt: skip
        return {"id": "x", "choices": [{"index": 0}], "usage": usage}

    merged = merged_body([body(10, 4), body(10, 4), body(6, 0), body(6, 0)], per_prompt=2)
    assert merged["usage"] == {"prompt_tokens": 16, "completion_tokens": 4, "total_tokens": 20,
                               "prompt_tokens_details": {"cached_tokens": 4}}  # fmt: skip


def test_bodies_merge_into_one_response_of_every_choice() -> None:
    def body(index: int, completion: int) -> dict[str, object]:
        usage = {"prompt_tokens": 5, "completion_tokens": completion,
                 "total_tokens": 5 + completion,
                 "completion_tokens_details": {"reasoning_tokens": 1}}  # fmt: skip
        return {"id": "x", "choices": [{"index": index, "text": str(index)}], "usage": usage}

    merged = merged_body([body(0, 2), body(1, 3)])
    assert [c["index"] for c in merged["choices"]] == [0, 1]
    assert merged["usage"] == {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10,
                               "completion_tokens_details": {"reasoning_tokens": 2}}  # fmt: skip


async def test_streams_interleave_and_all_close_when_the_reader_stops() -> None:
    closed: list[str] = []
    gate = asyncio.Event()

    async def stream(name: str, count: int) -> AsyncIterator[bytes]:
        try:
            for i in range(count):
                yield f"{name}{i}".encode()
                if name == "b":
                    await gate.wait()  # b stalls after its first chunk
        finally:
            closed.append(name)

    got = []
    async with aclosing(interleaved([stream("a", 3), stream("b", 3)])) as chunks:
        async for chunk in chunks:
            got.append(chunk)
            if len(got) == 4:
                break
    assert sorted(got) == [b"a0", b"a1", b"a2", b"b0"]
    assert sorted(closed) == ["a", "b"]  # b, stalled, was closed with the whole


async def test_a_stream_that_fails_fails_the_whole() -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"x"
        raise RuntimeError("gone")

    with pytest.raises(RuntimeError, match="gone"):
        async for _ in interleaved([failing()]):
            pass
