"""Ollama's keep_alive against a stack with keys: a request with nothing to run loads the
model (or, with keep_alive 0, unloads it); keep_alive 0 on an answer unloads the model
once the answer is out, and takes an admin key; a negative one pins it when an admin key
asks, and from anyone else is what happens anyway (Zed sends -1 with every request)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import ollama
import pytest

from cortex_wire import codec, subjects
from cortex_wire.messages import ModelEvent
from tests.support.stack import RunningStack, stack_on_own_bus
from tests.support.tiny_gguf import TinyModel

USER = [{"role": "user", "content": "Say hello"}]
NODE = "keeper"


@pytest.fixture(scope="module")
def keyed(
    hello_model: TinyModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    folder: Path = tmp_path_factory.mktemp("keep-alive")
    models = [{"id": "tiny-hello", "path": str(hello_model.path), "n_ctx": 256}]
    gateway = {"api_keys": ["usr"], "admin_keys": ["adm"], "require_auth": True}
    with stack_on_own_bus(folder, models, node=NODE, gateway=gateway) as running:
        yield running


def client(stack: RunningStack, key: str) -> ollama.Client:
    return ollama.Client(host=stack.base_url, headers={"authorization": f"Bearer {key}"})


def loaded(stack: RunningStack) -> set[str]:
    return {m.model for m in client(stack, "usr").ps().models}


async def until_unloaded(stack: RunningStack, run: object) -> None:
    """Run `run` (a blocking call) and wait for the neuron to report the model unloaded."""
    nc = await nats.connect(stack.nats_url)
    try:
        events = await nc.subscribe(subjects.model_event(NODE, "tiny-hello"))
        await asyncio.to_thread(run)  # type: ignore[arg-type]
        while True:
            event = codec.decode((await events.next_msg(timeout=30)).data, ModelEvent)
            if event.state == "unloaded":
                return
    finally:
        await nc.close()


def test_nothing_to_run_loads_the_model_for_anyone(keyed: RunningStack) -> None:
    done = client(keyed, "usr").generate(model="tiny-hello")
    assert (done.done, done.done_reason, done.response) == (True, "load", "")
    assert "tiny-hello:latest" in loaded(keyed)
    chat = client(keyed, "usr").chat(model="tiny-hello", messages=[])
    assert (chat.done_reason, chat.message.content) == ("load", "")


def test_a_positive_duration_is_taken_and_the_model_answers(keyed: RunningStack) -> None:
    done = client(keyed, "usr").chat(model="tiny-hello", messages=USER, keep_alive="1h30m")
    assert done.message.content == "Hello, world!"


def pins(stack: RunningStack) -> list[str]:
    status = httpx.get(
        f"{stack.base_url}/admin/status", headers={"authorization": "Bearer adm"}
    ).json()
    return [p["model"] for p in status["pins"]]


def test_unloading_needs_an_admin_key(keyed: RunningStack) -> None:
    client(keyed, "usr").generate(model="tiny-hello")
    with pytest.raises(ollama.ResponseError) as refused:
        client(keyed, "usr").chat(model="tiny-hello", messages=USER, keep_alive=0)
    assert refused.value.status_code == 403
    assert "keep_alive 0 unloads it" in refused.value.error and "admin key" in refused.value.error
    assert "tiny-hello:latest" in loaded(keyed)  # nothing was done


@pytest.mark.parametrize("keep_alive", [-1, "-1m", "-1"])
def test_a_negative_keep_alive_without_an_admin_key_is_as_scheduled(
    keyed: RunningStack, keep_alive: float | str
) -> None:
    """What Zed's Ollama provider sends with every chat: answered, and nothing pinned."""
    done = client(keyed, "usr").chat(model="tiny-hello", messages=USER, keep_alive=keep_alive)
    assert done.message.content == "Hello, world!"
    streamed = client(keyed, "usr").generate(
        model="tiny-hello", prompt="Say hello", keep_alive=keep_alive, stream=True
    )
    assert "".join(p.response for p in streamed) == "Hello, world!"
    nothing = client(keyed, "usr").generate(model="tiny-hello", keep_alive=keep_alive)
    assert nothing.done_reason == "load"
    assert "tiny-hello:latest" in loaded(keyed) and pins(keyed) == []


async def test_keep_alive_zero_unloads_after_the_answer(keyed: RunningStack) -> None:
    await asyncio.to_thread(client(keyed, "usr").generate, model="tiny-hello")
    answers: list[str] = []

    def ask() -> None:
        parts = client(keyed, "adm").chat(
            model="tiny-hello", messages=USER, keep_alive=0, stream=True
        )
        answers.append("".join(p.message.content for p in parts))

    await until_unloaded(keyed, ask)
    assert answers == ["Hello, world!"]  # the whole answer came first
    assert "tiny-hello:latest" not in await asyncio.to_thread(loaded, keyed)


async def test_keep_alive_zero_with_nothing_to_run_unloads_now(keyed: RunningStack) -> None:
    await asyncio.to_thread(client(keyed, "usr").generate, model="tiny-hello")
    said: list[str | None] = []

    def unload() -> None:
        said.append(client(keyed, "adm").generate(model="tiny-hello", keep_alive=0).done_reason)

    await until_unloaded(keyed, unload)
    assert said == ["unload"]


def test_a_negative_keep_alive_pins_the_model(keyed: RunningStack) -> None:
    done = client(keyed, "adm").chat(model="tiny-hello", messages=USER, keep_alive=-1)
    assert done.message.content == "Hello, world!"
    assert pins(keyed) == ["tiny-hello"]
    unpinned = httpx.post(
        f"{keyed.base_url}/admin/models/unpin", json={"model": "tiny-hello"},
        headers={"authorization": "Bearer adm"},
    )  # fmt: skip
    assert unpinned.status_code == 200, unpinned.text


@pytest.mark.parametrize("with_answer", [False, True])
async def test_keep_alive_zero_undoes_a_pin_keep_alive_minus_one_made(
    keyed: RunningStack, with_answer: bool
) -> None:
    """As in Ollama, whose clients (`ollama stop`) have no other way to undo their -1."""
    pinned = client(keyed, "adm").chat(model="tiny-hello", messages=USER, keep_alive=-1)
    assert pinned.message.content == "Hello, world!" and pins(keyed) == ["tiny-hello"]

    def stop() -> None:
        if with_answer:
            client(keyed, "adm").chat(model="tiny-hello", messages=USER, keep_alive=0)
        else:
            client(keyed, "adm").generate(model="tiny-hello", keep_alive=0)

    await until_unloaded(keyed, stop)
    assert await asyncio.to_thread(pins, keyed) == []


async def test_a_request_that_only_loads_is_counted(keyed: RunningStack) -> None:
    """Ollama clients preload with an empty request: it is a request, and its cold start."""

    def counted() -> tuple[float, float]:
        requests = cold = 0.0
        for line in httpx.get(keyed.metrics_url).text.splitlines():
            if 'route="ollama_generate"' not in line:
                continue
            if line.startswith("cortex_requests_total{") and 'outcome="ok"' in line:
                requests += float(line.rsplit(" ", 1)[1])
            if line.startswith("cortex_cold_starts_total{"):
                cold += float(line.rsplit(" ", 1)[1])
        return requests, cold

    def preload() -> None:
        assert client(keyed, "usr").generate(model="tiny-hello").done_reason == "load"

    await asyncio.to_thread(preload)  # loaded, so that it can be unloaded
    await until_unloaded(
        keyed, lambda: client(keyed, "adm").generate(model="tiny-hello", keep_alive=0)
    )
    before = await asyncio.to_thread(counted)
    await asyncio.to_thread(preload)
    assert await asyncio.to_thread(counted) == (before[0] + 1, before[1] + 1)
