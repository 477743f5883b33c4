"""Hostile input at the HTTP edge: names built to escape a NATS subject, malformed and
extreme bodies. Every one gets a clear 4xx in its dialect's envelope; nothing crashes,
nothing leaks a 5xx, and a neuron with a hostile name serves like any other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support.stack import RunningStack, stack_on_own_bus

# A neuron and a model whose names contain every subject metacharacter there is.
NODE = "gpu.0 *>\r\nnœud-模型"
MODEL = "org.model*>v1 \tcafé"
M = [{"role": "user", "content": "x"}]
HOSTILE_IDS = ["a.b", "*", ">", "a b", "a\r\nb", "模型🙂", "x" * 10_000, "cortex.>", "~2e"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    models = [{"id": MODEL, "n_ctx": 64, "script": {"reply": "fine"}}]
    folder = tmp_path_factory.mktemp("hostile")
    with stack_on_own_bus(folder, models, node=NODE, aliases={"s": MODEL}) as running:
        yield running


@pytest.fixture
def client(stack: RunningStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        yield client


def openai_error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"message", "type", "code", "param"} <= set(body["error"])
    return dict(body["error"])


def test_a_neuron_and_model_with_hostile_names_serve_normally(client: httpx.Client) -> None:
    answer = client.post("/v1/chat/completions", json={"model": MODEL, "messages": M})
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "fine"
    listed = next(m for m in client.get("/v1/models").json()["data"] if m["id"] == MODEL)
    assert listed["served_by"] == [NODE]


@pytest.mark.parametrize("model", HOSTILE_IDS)
@pytest.mark.parametrize(
    "route", ["/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages"]
)
def test_hostile_model_ids_are_a_clear_404(client: httpx.Client, route: str, model: str) -> None:
    body: dict[str, Any] = {"model": model, "messages": M, "prompt": "x", "input": "x"}
    if route == "/v1/messages":
        body = {"model": model, "messages": M, "max_tokens": 5}
    elif route == "/v1/completions":
        body = {"model": model, "prompt": "x"}
    elif route == "/v1/responses":
        body = {"model": model, "input": "x"}
    response = client.post(route, json=body)
    assert response.status_code == 404, response.text
    if route == "/v1/messages":
        assert response.json()["error"]["type"] == "not_found_error"
    else:
        assert openai_error(response)["code"] == "model_not_found"
    assert len(response.content) < 2000  # a long name is shown cut, not echoed whole


@pytest.mark.parametrize("model", HOSTILE_IDS)
def test_hostile_ids_in_model_lookups_and_admin_routes(client: httpx.Client, model: str) -> None:
    assert client.get(f"/v1/models/{quote(model, safe='')}").status_code == 404
    # Admin is off without admin keys: refused before the id is even looked at.
    assert (
        client.post("/admin/models/load", json={"model": model, "node": model}).status_code == 403
    )


def chat_with(extra: str) -> bytes:
    """A valid chat body for model "s" with `extra` (raw JSON members) added."""
    return b'{"model":"s","messages":[{"role":"user","content":"x"}]' + extra.encode() + b"}"


BAD_BODIES: dict[str, tuple[bytes, str]] = {
    "not JSON": (b"hello", "not valid JSON"),
    "a JSON array": (b"[]", "Expected `object`"),
    "NaN": (chat_with(',"temperature":NaN'), "JSON"),
    "Infinity": (chat_with(',"top_p":Infinity'), "JSON"),
    "deeply nested": (
        b'{"model":"s","messages":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "messages",
    ),
    "invalid UTF-8": (b'{"model":"s\xff","messages":[]}', "UTF-8"),
    "no messages": (b'{"model":"s","messages":[]}', "at least one message"),
    "no model": (b'{"messages":[{"role":"user","content":"x"}]}', "model"),
    "negative max_tokens": (chat_with(',"max_tokens":-1'), "max_tokens"),
    "negative temperature": (chat_with(',"temperature":-1'), "temperature"),
    "huge temperature": (chat_with(',"temperature":1e308'), "temperature"),
    "top_p above 1": (chat_with(',"top_p":2'), "top_p"),
    "unknown role": (b'{"model":"s","messages":[{"role":"wizard","content":"x"}]}', "role"),
    "content of the wrong type": (
        b'{"model":"s","messages":[{"role":"user","content":5}]}',
        "content",
    ),
    "prompt over the context": (
        b'{"model":"s","messages":[{"role":"user","content":"' + b"w " * 400 + b'"}]}',
        "context of 64 tokens",
    ),
}


@pytest.mark.parametrize("name", BAD_BODIES)
def test_bad_bodies_are_a_clear_400(client: httpx.Client, name: str) -> None:
    raw, says = BAD_BODIES[name]
    response = client.post(
        "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert says in openai_error(response)["message"]


@pytest.mark.parametrize(
    "route",
    ["/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages",
     "/v1/messages/count_tokens", "/v1/embeddings", "/api/chat", "/api/generate", "/api/embed",
     "/api/embeddings", "/api/show", "/tokenize", "/detokenize"],
)  # fmt: skip
def test_a_body_nested_past_any_sense_is_a_400_on_every_route(
    client: httpx.Client, route: str
) -> None:
    """Nested where any JSON may go (metadata, a tool's parameters): msgspec recursed until
    Python stopped it, a 500."""
    deep = b"[" * 100_000 + b"]" * 100_000
    raw = b'{"model":"s","prompt":"x","input":"x","messages":[],"metadata":' + deep + b"}"
    if route.startswith("/v1/messages"):  # (no field of Anthropic's takes any JSON but these)
        limit = b"" if route.endswith("count_tokens") else b'"max_tokens":1,'
        raw = (b'{"model":"s",' + limit + b'"messages":[{"role":"user","content":"x"}],'
               b'"tools":[{"name":"t","input_schema":{"a":' + deep + b"}}]}")  # fmt: skip
    elif route == "/v1/responses":
        raw = b'{"model":"s","input":"x","metadata":{"a":' + deep + b"}}"
    response = client.post(route, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert "nested too deeply" in response.text


@pytest.mark.parametrize("name", ["NaN", "deeply nested", "invalid UTF-8", "no messages"])
def test_bad_bodies_get_anthropics_envelope_on_messages(client: httpx.Client, name: str) -> None:
    raw, _ = BAD_BODIES[name]
    response = client.post(
        "/v1/messages", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"


def test_extreme_but_valid_numbers_are_served(client: httpx.Client) -> None:
    # max_tokens far beyond the context: the context is the limit; any int is a fine seed.
    for extra in ({"max_tokens": 10**12}, {"seed": 2**70}, {"seed": -5}):
        answer = client.post("/v1/chat/completions", json={"model": "s", "messages": M, **extra})
        assert answer.status_code == 200, (extra, answer.text)
        assert answer.json()["choices"][0]["message"]["content"] == "fine"


def test_an_empty_prompt_starts_from_the_bos_token_of_a_model_that_has_one(
    client: httpx.Client,
) -> None:
    """OpenAI takes "" as a prompt; the scripted model has a BOS token, so the prompt is
    that one token and the model answers (a model without one refuses: no tokens)."""
    answer = client.post("/v1/completions", json={"model": "s", "prompt": ""})
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["text"] == "fine"
    assert answer.json()["usage"]["prompt_tokens"] == 1


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"response_format": {"type": "json_object"}}, "cannot follow a JSON schema"),
        ({"logit_bias": {"5": 1}}, "no logits to bias"),
        ({"logprobs": True}, "no logits to score"),
    ],
)
def test_what_a_scripted_model_cannot_do_is_a_400_before_its_stream(
    client: httpx.Client, extra: dict[str, Any], says: str
) -> None:
    """The scripted model follows no schema and has no logits: refused before the
    stream's headers, as llama.cpp's refusals are."""
    body = {"model": "s", "messages": M, "stream": True, **extra}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.read()
    assert response.status_code == 400, response.text
    assert says in openai_error(response)["message"]


def test_schema_errors_name_the_field_and_malformed_json_says_so(client: httpx.Client) -> None:
    missing = openai_error(client.post("/v1/chat/completions", json={"messages": M}))
    assert missing["message"] == "invalid request: Object missing required field `model`"
    assert missing["param"] == "model"
    typed = openai_error(
        client.post("/v1/chat/completions", json={"model": "s", "messages": [{"role": 1}]})
    )
    assert typed["param"] == "messages[0].role"
    malformed = openai_error(
        client.post(
            "/v1/chat/completions", content=b"{", headers={"content-type": "application/json"}
        )
    )
    assert malformed["message"].startswith("request body is not valid JSON")
    assert malformed["param"] is None


def test_a_body_the_bus_carries_reaches_the_neuron(client: httpx.Client) -> None:
    """2 MiB, over nats-server's default max_payload of 1 MiB (a 500 on every route):
    the embedded server carries what the gateway's body limit lets in."""
    big = {"model": "s", "messages": [{"role": "user", "content": "w " * 1_000_000}]}
    response = client.post("/v1/chat/completions", json=big)
    assert response.status_code == 400, response.text
    assert "context of 64 tokens" in openai_error(response)["message"]  # the neuron's answer


def test_a_body_larger_than_the_bus_carries_is_a_413_saying_so(tmp_path: Path) -> None:
    from cortex_core.nats_server import EmbeddedNats
    from tests.conftest import write_catalogue
    from tests.support.stack import running_stack, stack_settings

    config = tmp_path / "small.conf"
    config.write_text("max_payload: 65536\n")  # as an operator's own server may say
    bus = EmbeddedNats("127.0.0.1", -1, tmp_path / "nats", extra_args=("-c", str(config)))
    bus.start()
    try:
        models = write_catalogue(
            tmp_path / "models.toml", [{"id": "s", "n_ctx": 64, "script": {"reply": "x"}}]
        )
        with running_stack(stack_settings(bus.url, models, node="small-bus")) as stack:
            big = {"model": "s", "messages": [{"role": "user", "content": "w " * 50_000}]}
            response = httpx.post(f"{stack.base_url}/v1/chat/completions", json=big, timeout=30)
    finally:
        bus.stop()
    assert response.status_code == 413, response.text
    assert "carries at most 65536" in openai_error(response)["message"]
    assert response.headers["x-should-retry"] == "false"
