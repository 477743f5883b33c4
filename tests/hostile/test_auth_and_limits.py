"""The gateway's edges: API keys and admin keys, admission limits, body limits, context
limits, and clients that leave without reading their answer."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import anthropic
import httpx
import nats
import openai
import pytest

from cortex_wire import codec
from cortex_wire.messages import Done
from tests.support.stack import RunningStack, stack_on_own_bus
from tests.support.tiny_gguf import TinyModel

USER_KEY, ADMIN_KEY = "sk-user-0123456789", "sk-admin-9876543210"
HI = [{"role": "user", "content": "Hi"}]
LIMIT = 4096  # the gateway's max_body_bytes


@pytest.fixture(scope="module")
def guarded(
    hello_model: TinyModel, endless_model: TinyModel, tmp_path_factory
) -> Iterator[RunningStack]:
    # A bus of its own: these tests hold a slot busy and count on no other stack's
    # scheduler or neurons acting on the same fleet.
    models = [
        {"id": "hello", "path": str(hello_model.path), "n_ctx": 256},
        {
            "id": "busy",
            "path": str(endless_model.path),
            "n_ctx": 65536,
            "max_in_flight": 1,
            "max_queue_depth": 0,
        },
    ]
    gateway = {
        "require_auth": True,
        "api_keys": [USER_KEY],
        "admin_keys": [ADMIN_KEY],
        "max_body_bytes": LIMIT,
    }
    folder = tmp_path_factory.mktemp("guarded")
    with stack_on_own_bus(folder, models, node="guarded-neuron", gateway=gateway) as stack:
        yield stack


def headers(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_keys_are_required_except_for_health(guarded: RunningStack) -> None:
    assert httpx.get(f"{guarded.base_url}/health").status_code == 200
    bare = httpx.get(f"{guarded.base_url}/v1/models")
    assert bare.status_code == 401 and bare.json()["error"]["type"] == "authentication_error"
    assert httpx.get(f"{guarded.base_url}/v1/models", headers=headers("wrong")).status_code == 401
    assert httpx.get(f"{guarded.base_url}/v1/models", headers=headers(USER_KEY)).status_code == 200
    assert (
        httpx.get(f"{guarded.base_url}/v1/models", headers={"x-api-key": USER_KEY}).status_code
        == 200
    )

    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=f"{guarded.base_url}/v1", api_key="nope", max_retries=0
        ).models.list()
    gpt = openai.OpenAI(base_url=f"{guarded.base_url}/v1", api_key=USER_KEY, max_retries=0)
    assert (
        gpt.chat.completions.create(model="hello", messages=HI).choices[0].message.content
        == "Hello, world!"
    )

    with pytest.raises(anthropic.AuthenticationError) as caught:
        anthropic.Anthropic(
            base_url=guarded.base_url, api_key="nope", max_retries=0
        ).messages.create(model="hello", max_tokens=8, messages=HI)
    assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    claude = anthropic.Anthropic(base_url=guarded.base_url, api_key=USER_KEY, max_retries=0)
    assert (
        claude.messages.create(model="hello", max_tokens=8, messages=HI).content[0].text
        == "Hello, world!"
    )
    with pytest.raises(anthropic.AuthenticationError) as listing:  # the list both APIs share
        anthropic.Anthropic(base_url=guarded.base_url, api_key="nope", max_retries=0).models.list()
    assert listing.value.body["type"] == "error"  # type: ignore[index]
    assert listing.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


def test_admin_operations_need_an_admin_key(guarded: RunningStack) -> None:
    url = f"{guarded.base_url}/admin/models/load"
    denied = httpx.post(url, json={"model": "hello"}, headers=headers(USER_KEY), timeout=60)
    assert denied.status_code == 403 and denied.json()["error"]["type"] == "permission_error"
    assert httpx.post(url, json={"model": "hello"}, timeout=60).status_code == 401
    loaded = httpx.post(url, json={"model": "hello"}, headers=headers(ADMIN_KEY), timeout=60)
    assert loaded.json() == {"ok": True, "model": "hello", "node": "guarded-neuron"}
    pin = httpx.post(
        f"{guarded.base_url}/admin/models/pin",
        json={"model": "hello"},
        headers=headers(ADMIN_KEY),
        timeout=60,
    )
    assert pin.status_code == 200 and pin.json()["ok"]
    status = httpx.get(f"{guarded.base_url}/admin/status", headers=headers(ADMIN_KEY)).json()
    assert ["hello"] == [p["model"] for p in status["pins"]]
    pinned = httpx.post(
        f"{guarded.base_url}/admin/models/unload",
        json={"model": "hello"},
        headers=headers(ADMIN_KEY),
        timeout=60,
    )
    assert pinned.status_code == 409, pinned.text  # the pin would load it straight back
    assert pinned.json()["error"]["code"] == "model_pinned"
    assert "pinned on any neuron; unpin it first" in pinned.json()["error"]["message"]
    unpin = httpx.post(
        f"{guarded.base_url}/admin/models/unpin",
        json={"model": "hello"},
        headers=headers(ADMIN_KEY),
    )
    assert unpin.json()["detail"] == "unpinned 'hello'"
    for action in ("load", "unload"):  # a neuron that is not there is named, not a shortage
        stray = httpx.post(
            f"{guarded.base_url}/admin/models/{action}",
            json={"model": "hello", "node": "nope"},
            headers=headers(ADMIN_KEY),
            timeout=60,
        )
        assert stray.status_code == 404, stray.text
        assert "no live neuron is named 'nope'" in stray.json()["error"]["message"]


def test_keys_never_reach_the_logs(
    guarded: RunningStack, capfd: pytest.CaptureFixture[str]
) -> None:
    httpx.get(f"{guarded.base_url}/v1/models", headers=headers(USER_KEY))
    httpx.get(f"{guarded.base_url}/v1/models", headers=headers("sk-wrong-key-value"))
    httpx.post(
        f"{guarded.base_url}/admin/models/load",
        json={"model": "hello"},
        headers=headers(ADMIN_KEY),
        timeout=60,
    )
    out, err = capfd.readouterr()
    for secret in (USER_KEY, ADMIN_KEY, "sk-wrong-key-value"):
        assert secret not in out + err


def test_body_over_the_limit_is_413(guarded: RunningStack) -> None:
    big = {"model": "hello", "messages": [{"role": "user", "content": "x" * 10_000}]}
    response = httpx.post(
        f"{guarded.base_url}/v1/chat/completions", json=big, headers=headers(USER_KEY)
    )
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "request_too_large"
    assert error["message"] == (
        f"the request body is over the gateway's limit of {LIMIT} bytes (max_body_bytes)"
    )


def test_prompt_longer_than_the_context_is_400_with_the_numbers(guarded: RunningStack) -> None:
    long = [{"role": "user", "content": "word " * 600}]
    gpt = openai.OpenAI(base_url=f"{guarded.base_url}/v1", api_key=USER_KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        gpt.chat.completions.create(model="hello", messages=long)
    assert caught.value.code == "context_length_exceeded"
    assert "context of 256 tokens" in caught.value.message
    claude = anthropic.Anthropic(base_url=guarded.base_url, api_key=USER_KEY, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(model="hello", max_tokens=8, messages=long)
    # How Claude Code tells an overflow (and how much) from other refusals.
    told = re.search(r"prompt is too long[^0-9]*(\d+)\s*tokens?\s*>\s*(\d+)", refused.value.message)
    assert told is not None, refused.value.message
    assert int(told.group(1)) > 255 and int(told.group(2)) == 255


def test_refusals_that_would_fail_again_say_not_to_retry(guarded: RunningStack) -> None:
    """Claude Code retried a 401 for three minutes: a refusal that the same request would
    get again carries x-should-retry: false; a limit (429) does not."""
    chat = f"{guarded.base_url}/v1/chat/completions"
    ask = {"model": "hello", "messages": HI}
    refusals = [
        httpx.post(chat, json=ask),  # 401
        httpx.post(f"{guarded.base_url}/v1/messages", json=ask, headers=headers(USER_KEY)),
        httpx.post(chat, json={**ask, "model": "nope"}, headers=headers(USER_KEY)),  # 404
        httpx.get(f"{guarded.base_url}/v1/no-such-route", headers=headers(USER_KEY)),
    ]
    assert [r.status_code for r in refusals] == [401, 400, 404, 404]
    assert [r.headers.get("x-should-retry") for r in refusals] == ["false"] * 4
    body = {"model": "busy", "stream": True, "messages": HI}
    with httpx.Client(base_url=guarded.base_url, headers=headers(USER_KEY), timeout=60) as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as holding:
            lines = holding.iter_lines()  # held: a dropped reader would close the stream
            for line in lines:
                if '"content":"tick' in line:
                    break  # the one slot is generating
            overloaded = http.post("/v1/chat/completions", json=body)
            lines.close()
    assert overloaded.status_code == 429 and "x-should-retry" not in overloaded.headers


def test_a_key_sent_bare_in_authorization_is_read(guarded: RunningStack) -> None:
    url = f"{guarded.base_url}/v1/models"
    assert httpx.get(url, headers={"authorization": USER_KEY}).status_code == 200
    wrong = httpx.get(url, headers={"authorization": "not-the-key"})
    assert wrong.status_code == 401 and "not valid" in wrong.json()["error"]["message"]


async def test_non_streaming_client_that_leaves_cancels_its_generation(
    guarded: RunningStack,
) -> None:
    nc = await nats.connect(guarded.nats_url)
    cancelled: asyncio.Future[Done] = asyncio.get_running_loop().create_future()

    async def on_frame(msg) -> None:
        frame = codec.decode_frame(msg.data)
        if isinstance(frame, Done) and frame.finish_reason == "cancelled" and not cancelled.done():
            cancelled.set_result(frame)

    await nc.subscribe("cortex.stream.>", cb=on_frame)
    try:
        async with httpx.AsyncClient(
            base_url=guarded.base_url, headers=headers(USER_KEY)
        ) as client:
            with pytest.raises(httpx.ReadTimeout):
                # It would run to the end of a 65536-token context; the client gives up first.
                await client.post(
                    "/v1/chat/completions", json={"model": "busy", "messages": HI}, timeout=1.0
                )
        done = await asyncio.wait_for(cancelled, 30)
    finally:
        await nc.close()
    assert done.usage.completion_tokens < 8000
