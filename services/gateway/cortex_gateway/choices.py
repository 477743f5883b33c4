"""Several answers to one prompt (OpenAI's `n`), and to several prompts (the legacy
completions' list of prompts): one generation per choice, sent together so the neuron
prefills a shared prompt once and copies it between slots; their streams interleave in
one response, each chunk naming its choice (prompt i's j-th is choice i * n + j).

A prompt's choice j samples with the request's seed plus j, so a seeded request with n
choices gives what n separate requests with seeds seed, seed+1, ... give."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import suppress
from typing import Any

from cortex_wire.messages import Usage


def choice_seed(seed: int | None, choice: int) -> int | None:
    return None if seed is None else seed + choice


def total_usage(usages: Sequence[Usage], per_prompt: int = 0) -> Usage:
    """The request's usage: each prompt once (the choices of one prompt come together,
    `per_prompt` of them; 0: all choices answer one prompt), every choice's completion."""
    prompts = usages[:: per_prompt or len(usages)]
    return Usage(
        prompt_tokens=sum(u.prompt_tokens for u in prompts),
        completion_tokens=sum(u.completion_tokens for u in usages),
        cached_tokens=sum(u.cached_tokens for u in prompts),
        reasoning_tokens=sum(u.reasoning_tokens for u in usages),
        tool_calls=sum(u.tool_calls for u in usages),
    )


def merged_body(bodies: Sequence[dict[str, Any]], per_prompt: int = 0) -> dict[str, Any]:
    """One response of every choice (each body answers one, its index set), its usage
    each prompt once and every choice's completion (OpenAI's usage fields)."""
    choices = [choice for body in bodies for choice in body["choices"]]
    usages = [body["usage"] for body in bodies]
    prompts = usages[:: per_prompt or len(usages)]
    usage = dict(usages[0])
    usage["prompt_tokens"] = sum(u["prompt_tokens"] for u in prompts)
    usage["completion_tokens"] = sum(u["completion_tokens"] for u in usages)
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    cached = sum(_detail(u, "prompt_tokens_details", "cached_tokens") for u in prompts)
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    reasoning = sum(_detail(u, "completion_tokens_details", "reasoning_tokens") for u in usages)
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return {**bodies[0], "choices": choices, "usage": usage}


def _detail(usage: dict[str, Any], group: str, name: str) -> int:
    return int(usage.get(group, {}).get(name, 0))


async def interleaved(
    streams: Sequence[AsyncIterator[bytes]],
) -> AsyncGenerator[bytes, None]:
    """The chunks of every stream as each comes; when the consumer stops early, every
    stream is closed (which cancels its generation)."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def pump(stream: AsyncIterator[bytes]) -> None:
        try:
            async for chunk in stream:
                await queue.put(chunk)
        finally:
            await queue.put(None)

    tasks = [asyncio.ensure_future(pump(stream)) for stream in streams]
    try:
        running = len(tasks)
        while running:
            chunk = await queue.get()
            if chunk is None:
                running -= 1
            else:
                yield chunk
        for task in tasks:
            task.result()  # a stream's own failure, if any
    finally:
        for task in tasks:
            task.cancel()
        with suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
