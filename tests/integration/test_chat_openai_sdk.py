"""The official openai SDK against the whole stack on a real nats-server and llama.cpp."""

from __future__ import annotations

import httpx
import nats
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cortex_wire import codec, subjects
from cortex_wire.messages import RequestRecord
from tests.support.stack import RunningStack

USER = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def client(stack: RunningStack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="unused", max_retries=0)


def test_non_streaming_chat_returns_the_designed_reply(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="tiny-hello", messages=USER, temperature=0)
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello, world!"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 4
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 4
    assert completion.model == "tiny-hello"


def test_streaming_chat_delivers_every_token_in_order_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="tiny-hello", messages=USER, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello, world!"
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert len({c.id for c in chunks}) == 1


def test_max_tokens_cuts_with_length(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="tiny-hello", messages=USER, max_tokens=2)
    assert completion.choices[0].message.content == "Hello,"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 2


def test_stop_sequence_ends_the_reply_before_it(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="tiny-hello", messages=USER, stop=[" wor"])
    assert completion.choices[0].message.content == "Hello,"
    assert completion.choices[0].finish_reason == "stop"


def test_a_developer_message_is_the_system_message_it_stands_for(client: openai.OpenAI) -> None:
    """(Templates know no `developer` role: some dropped the message, some refused it.)"""
    prompts = {}
    for role in ("system", "developer"):
        messages = [{"role": role, "content": "Answer in French, always."}, *USER]
        done = client.chat.completions.create(model="tiny-hello", messages=messages, max_tokens=1)
        assert done.usage is not None
        prompts[role] = done.usage.prompt_tokens
    bare = client.chat.completions.create(model="tiny-hello", messages=USER, max_tokens=1)
    assert (
        bare.usage is not None
        and prompts["developer"] == prompts["system"] > bare.usage.prompt_tokens
    )


def test_alias_resolves_to_its_model(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="hello", messages=USER)
    assert completion.choices[0].message.content == "Hello, world!"


def test_models_lists_catalogue_aliases_and_live_state(
    client: openai.OpenAI, stack: RunningStack
) -> None:
    client.chat.completions.create(model="tiny-hello", messages=USER, max_tokens=1)
    ids = [m.id for m in client.models.list()]
    assert {"tiny-hello", "tiny-missing", "tiny-huge", "hello"} <= set(ids)
    body = httpx.get(f"{stack.base_url}/v1/models").json()
    hello = next(m for m in body["data"] if m["id"] == "tiny-hello")
    assert hello["served_by"] == ["test-neuron"]
    assert hello["state"] == {"test-neuron": "ready"}
    assert hello["context_length"] == 256
    alias = next(m for m in body["data"] if m["id"] == "hello")
    assert alias["alias_for"] == "tiny-hello"
    assert client.models.retrieve("tiny-hello").id == "tiny-hello"


def test_unknown_model_is_404_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no.such>model*", messages=USER)
    assert caught.value.code == "model_not_found"
    assert "no.such>model*" in caught.value.message


def test_bad_request_is_400_in_openai_envelope(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny-hello", messages=[], temperature=0)
    assert caught.value.body["param"] == "messages"  # type: ignore[index]


def test_malformed_json_is_400(stack: RunningStack) -> None:
    response = httpx.post(
        f"{stack.base_url}/v1/chat/completions",
        content=b"{nope",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_model_whose_file_is_missing_fails_clearly(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="tiny-missing", messages=USER)
    assert caught.value.status_code == 503
    assert caught.value.code == "load_failed"
    assert "does-not-exist.gguf" in caught.value.message


def test_model_that_fits_nowhere_is_503_with_the_reason(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="tiny-huge", messages=USER)
    assert caught.value.status_code == 503
    assert caught.value.code == "no_capacity"
    assert "test-neuron: needs 999999 MiB" in caught.value.message


def test_missing_model_fails_in_band_when_streaming(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIError, match=r"does-not-exist\.gguf"):
        list(client.chat.completions.create(model="tiny-missing", messages=USER, stream=True))


def test_health_and_metrics(client: openai.OpenAI, stack: RunningStack) -> None:
    client.chat.completions.create(model="tiny-hello", messages=USER)
    health = httpx.get(f"{stack.base_url}/health").json()
    assert health == {"status": "ok", "nats": "connected", "neurons": 1}
    ready = httpx.get(f"{stack.base_url}/health", params={"scheduler": "true", "wait": 10})
    assert ready.status_code == 200
    missing = httpx.get(
        f"{stack.base_url}/health", params={"neuron": "no-such-neuron", "wait": 0.2}
    )
    assert missing.status_code == 503 and missing.json()["status"] == "waiting"
    text = httpx.get(stack.metrics_url).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    where = (("model", "tiny-hello"), ("node", "test-neuron"))
    assert samples[("cortex_requests_total", (*where, ("outcome", "ok"), ("route", "chat")))] >= 1
    assert samples[("cortex_completion_tokens_total", (*where, ("route", "chat")))] >= 4
    assert samples[("cortex_time_to_first_token_seconds_count", (*where, ("route", "chat")))] >= 1
    assert samples[("cortex_prefill_seconds_count", (*where, ("route", "chat")))] >= 1
    # A fleet gauge per model and neuron, from heartbeats (its value lags by one beat).
    gauge = ("cortex_model_requests_in_flight", (("model", "tiny-hello"), ("node", "test-neuron")))
    assert gauge in samples
    assert samples[("cortex_neurons_up", ())] >= 1


async def test_every_request_is_also_a_record_on_the_bus(stack: RunningStack) -> None:
    nc = await nats.connect(stack.nats_url)
    records = await nc.subscribe(subjects.REQUEST_RECORDS)
    try:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
            body = {"model": "tiny-hello", "messages": USER}
            reply = await http.post("/v1/chat/completions", json=body)
        request_id = reply.headers["x-request-id"]
        while True:
            record = codec.decode((await records.next_msg(timeout=10)).data, RequestRecord)
            if record.request_id == request_id:
                break
    finally:
        await nc.close()
    assert (record.model, record.node, record.route, record.outcome) == (
        "tiny-hello",
        "test-neuron",
        "chat",
        "ok",
    )
    assert (
        record.completion_tokens == 4
        and record.ttft_s is not None
        and record.duration_s >= record.ttft_s
    )


def test_a_repeated_prompt_reports_its_cached_tokens(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "a question asked twice"}]
    client.chat.completions.create(model="tiny-hello", messages=messages)  # type: ignore[arg-type]
    again = client.chat.completions.create(model="tiny-hello", messages=messages)  # type: ignore[arg-type]
    assert again.usage is not None and again.usage.prompt_tokens_details is not None
    assert again.usage.prompt_tokens_details.cached_tokens == again.usage.prompt_tokens - 1


def test_a_stream_refused_before_acceptance_gets_a_real_status(client: openai.OpenAI) -> None:
    # Placement fails at once, before any header: the client sees 503, not a 200 stream
    # carrying an error.
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="tiny-huge", messages=USER, stream=True)
    assert caught.value.status_code == 503
    assert caught.value.code == "no_capacity"
    assert caught.value.response.headers.get("retry-after") is not None
