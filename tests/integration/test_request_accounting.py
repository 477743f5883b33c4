"""Every request to an inference route is accounted for, however it ends: counted by its
outcome, left in no in-flight gauge, logged once with the id its response carries, and a
cancelled one counts the tokens it was sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from cortex_wire import codec, subjects
from cortex_wire.messages import Cancel, Done, RequestRecord
from tests.support.stack import RunningStack, stack_on_own_bus
from tests.support.tiny_gguf import TinyModel

HI = [{"role": "user", "content": "Hi"}]
LONG = [{"role": "user", "content": "word " * 400}]  # more than hello's 256 tokens
NODE = "accounting-neuron"


@pytest.fixture(scope="module")
def accounting(
    hello_model: TinyModel, endless_model: TinyModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    # A bus of its own: the counts below move only for this module's requests.
    models = [
        {"id": "hello", "path": str(hello_model.path), "n_ctx": 256},
        # One slot and no queue: a second request is refused while one generates.
        {"id": "busy", "path": str(endless_model.path), "n_ctx": 8192, "max_in_flight": 1,
         "max_queue_depth": 0},
        {"id": "endless", "path": str(endless_model.path), "n_ctx": 8192},
    ]  # fmt: skip
    folder = tmp_path_factory.mktemp("accounting")
    with stack_on_own_bus(folder, models, node=NODE) as stack:
        yield stack


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(stack: RunningStack) -> Samples:
    text = httpx.get(stack.metrics_url).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def requests(samples: Samples, model: str, route: str, outcome: str, node: str = "") -> float:
    labels = (("model", model), ("node", node), ("outcome", outcome), ("route", route))
    return samples.get(("cortex_requests_total", labels), 0.0)


def in_flight(samples: Samples, model: str, route: str) -> float:
    return samples.get(("cortex_requests_in_flight", (("model", model), ("route", route))), 0.0)


def failures(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in logs if line["event"] == "request_failed"]


STREAMS = [
    ("/v1/chat/completions", "chat", {"stream": True, "messages": LONG}),
    ("/v1/messages", "messages", {"stream": True, "max_tokens": 8, "messages": LONG}),
    ("/api/chat", "ollama_chat", {"messages": LONG}),  # Ollama streams unless told not to
]


@pytest.mark.parametrize(("path", "route", "body"), STREAMS)
async def test_a_stream_refused_before_its_headers_is_counted_and_not_left_in_flight(
    accounting: RunningStack, path: str, route: str, body: dict[str, Any]
) -> None:
    nc = await nats.connect(accounting.nats_url)
    records = await nc.subscribe(subjects.REQUEST_RECORDS)
    before = scrape(accounting)
    try:
        with capture_logs() as logs:
            async with httpx.AsyncClient(base_url=accounting.base_url, timeout=60) as http:
                response = await http.post(path, json={"model": "hello", **body})
        assert response.status_code == 400
        assert "context" in response.text
        request_id = response.headers["request-id"]
        assert response.headers["x-request-id"] == request_id
        while True:  # the dashboard's record of it
            msg = await records.next_msg(timeout=10)
            record = codec.decode(msg.data, RequestRecord)
            if record.request_id == request_id:
                break
    finally:
        await nc.close()
    assert (record.route, record.outcome) == (route, "context_length_exceeded")
    after = scrape(accounting)
    assert in_flight(after, "hello", route) == in_flight(before, "hello", route) == 0
    outcome = "context_length_exceeded"
    assert requests(after, "hello", route, outcome) == requests(before, "hello", route, outcome) + 1
    [line] = [line for line in failures(logs) if line["request_id"] == request_id]
    assert (line["route"], line["status"], line["code"]) == (route, 400, outcome)
    assert line["log_level"] == "info" and "context" in line["error"]


async def test_a_stream_refused_as_overloaded_is_counted_and_not_left_in_flight(
    accounting: RunningStack,
) -> None:
    body = {"model": "busy", "stream": True, "messages": HI}
    async with httpx.AsyncClient(base_url=accounting.base_url, timeout=60) as http:
        async with http.stream("POST", "/v1/chat/completions", json=body) as holding:
            assert holding.status_code == 200
            lines = holding.aiter_lines()  # held: a dropped reader would close the stream
            async for line in lines:
                if '"content":"tick' in line:
                    break  # the one slot is generating
            before = scrape(accounting)
            refused = await http.post("/v1/chat/completions", json=body)
            after = scrape(accounting)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "overloaded"
    assert refused.headers["request-id"] == refused.headers["x-request-id"]
    assert in_flight(after, "busy", "chat") == in_flight(before, "busy", "chat") == 1
    assert requests(after, "busy", "chat", "overloaded") == (
        requests(before, "busy", "chat", "overloaded") + 1
    )


REJECTED = [
    # path, route, body, status, code, the catalogued model ("" for one it does not have)
    ("/v1/chat/completions", "chat", {"model": "no-such-model", "messages": HI}, 404,
     "model_not_found", ""),
    ("/v1/chat/completions", "chat", {"model": "hello", "messages": "Hi"}, 400,
     "invalid_request", "hello"),
    ("/v1/chat/completions", "chat", {"model": "hello", "messages": HI, "temperature": 9},
     400, "invalid_request", "hello"),
    ("/v1/messages", "messages", {"model": "hello", "messages": HI}, 400, "invalid_request",
     "hello"),
    ("/api/chat", "ollama_chat", {"model": "hello", "messages": HI,
     "options": {"mirostat": 2}}, 400, "invalid_request", "hello"),
    ("/v1/embeddings", "embeddings", {"model": "no-such-model", "input": "x"}, 404,
     "model_not_found", ""),
]  # fmt: skip


@pytest.mark.parametrize(("path", "route", "body", "status", "code", "model"), REJECTED)
def test_a_request_refused_at_the_gateway_is_counted_and_logged_with_its_id(
    accounting: RunningStack,
    path: str,
    route: str,
    body: dict[str, Any],
    status: int,
    code: str,
    model: str,
) -> None:
    before = scrape(accounting)
    with capture_logs() as logs:
        response = httpx.post(f"{accounting.base_url}{path}", json=body, timeout=60)
    assert response.status_code == status
    request_id = response.headers["request-id"]
    assert request_id.startswith("req_") and response.headers["x-request-id"] == request_id
    after = scrape(accounting)
    assert requests(after, model, route, code) == requests(before, model, route, code) + 1
    [line] = failures(logs)
    assert line["request_id"] == request_id
    assert (line["route"], line["status"], line["code"]) == (route, status, code)
    assert line["log_level"] == "info" and line["error"]
    # A name the catalogue does not have never becomes a label value.
    assert not any(("model", "no-such-model") in labels for _, labels in after)


def test_anthropic_clients_read_the_request_id_of_answers_and_errors(
    accounting: RunningStack,
) -> None:
    claude = anthropic.Anthropic(base_url=accounting.base_url, api_key="unused", max_retries=0)
    message = claude.messages.create(model="hello", max_tokens=8, messages=HI)
    assert message._request_id == message.id  # the id of the stream, in every log line
    with claude.messages.stream(model="hello", max_tokens=8, messages=HI) as stream:
        streamed = stream.get_final_message()
    assert stream.request_id == streamed.id
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude.messages.create(model="no-such-model", max_tokens=8, messages=HI)
    assert missing.value.request_id and missing.value.request_id.startswith("req_")
    assert missing.value.body["request_id"] == missing.value.request_id  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as long:
        with claude.messages.stream(model="hello", max_tokens=8, messages=LONG) as stream:
            stream.get_final_message()
    assert long.value.request_id and long.value.request_id.startswith("msg_")
    assert long.value.body["request_id"] == long.value.request_id  # type: ignore[index]


def test_message_start_reports_the_prompts_tokens(accounting: RunningStack) -> None:
    claude = anthropic.Anthropic(base_url=accounting.base_url, api_key="unused", max_retries=0)
    counted = claude.messages.count_tokens(model="hello", messages=HI).input_tokens
    with claude.messages.stream(model="hello", max_tokens=8, messages=HI) as stream:
        [start] = [event for event in stream if event.type == "message_start"]
        final = stream.get_final_message()
    assert counted > 0
    assert start.message.usage.input_tokens == counted
    usage = final.usage  # the end splits it: what the cache held, and the rest
    assert usage.input_tokens + (usage.cache_read_input_tokens or 0) == counted


async def test_a_cancelled_stream_counts_the_tokens_it_was_sent(
    accounting: RunningStack,
) -> None:
    nc = await nats.connect(accounting.nats_url)
    records = await nc.subscribe(subjects.REQUEST_RECORDS)
    done: asyncio.Future[Done] = asyncio.get_running_loop().create_future()

    async def on_frame(msg: Any) -> None:
        frame = codec.decode_frame(msg.data)
        if isinstance(frame, Done) and not done.done():
            done.set_result(frame)

    before = scrape(accounting)
    body = {"model": "endless", "stream": True, "messages": HI}
    try:
        async with httpx.AsyncClient(base_url=accounting.base_url, timeout=60) as http:
            async with http.stream("POST", "/v1/chat/completions", json=body) as response:
                assert response.status_code == 200
                request_id = response.headers["x-request-id"]
                await nc.subscribe(subjects.stream(request_id), cb=on_frame)
                seen = 0
                async for line in response.aiter_lines():
                    seen += "tick" in line or "tock" in line  # a chunk: a token or more
                    if seen >= 6:
                        break  # leave mid-stream: the connection closes with this block
        while True:
            record = codec.decode((await records.next_msg(timeout=30)).data, RequestRecord)
            if record.request_id == request_id:
                break
        neuron = await asyncio.wait_for(done, 30)  # what the neuron generated in all
    finally:
        await nc.close()
    assert record.outcome == "cancelled"
    assert 6 <= record.completion_tokens <= neuron.usage.completion_tokens < 8000
    assert record.prompt_tokens == neuron.usage.prompt_tokens
    labels = (("model", "endless"), ("node", NODE), ("route", "chat"))
    counted = scrape(accounting).get(("cortex_completion_tokens_total", labels), 0.0)
    assert counted - before.get(("cortex_completion_tokens_total", labels), 0.0) == (
        record.completion_tokens
    )


GONE_EARLY = [
    ("/v1/chat/completions", "chat", {"stream": True}),
    ("/v1/messages", "messages", {"stream": True, "max_tokens": 4096}),
    ("/api/chat", "ollama_chat", {}),
]


@pytest.mark.parametrize(("path", "route", "body"), GONE_EARLY)
async def test_a_stream_whose_client_left_before_its_first_chunk_is_cancelled_and_counted(
    accounting: RunningStack, path: str, route: str, body: dict[str, Any]
) -> None:
    """The client hangs up right after sending: the gateway answers into a closed
    connection, whose body never runs, yet the neuron is told to stop and the request
    is counted once, as cancelled, in no in-flight gauge."""
    nc = await nats.connect(accounting.nats_url)
    records = await nc.subscribe(subjects.REQUEST_RECORDS)
    cancels = await nc.subscribe(subjects.CANCEL)
    before = scrape(accounting)
    payload = json.dumps({"model": "endless", "messages": HI, **body}).encode()
    url = httpx.URL(accounting.base_url)
    try:
        _, writer = await asyncio.open_connection(url.host, url.port)
        head = f"POST {path} HTTP/1.1\r\nHost: {url.host}\r\nContent-Type: application/json"
        writer.write(f"{head}\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)
        await writer.drain()
        writer.close()  # gone before any byte of the answer
        await writer.wait_closed()
        while True:
            record = codec.decode((await records.next_msg(timeout=30)).data, RequestRecord)
            if (record.model, record.route) == ("endless", route):
                break
        while True:
            cancel = codec.decode((await cancels.next_msg(timeout=30)).data, Cancel)
            if cancel.request_id == record.request_id:
                break
    finally:
        await nc.close()
    assert record.outcome == "cancelled"
    after = scrape(accounting)
    assert in_flight(after, "endless", route) == in_flight(before, "endless", route) == 0
    assert requests(after, "endless", route, "cancelled", NODE) == (
        requests(before, "endless", route, "cancelled", NODE) + 1
    )


async def test_a_client_that_hangs_up_mid_body_is_counted_as_cancelled(
    accounting: RunningStack,
) -> None:
    """The body never all arrives (the framework's 500 "client disconnected prematurely"):
    no answer is read, so the request is a cancelled one, never an error of the gateway's."""
    nc = await nats.connect(accounting.nats_url)
    records = await nc.subscribe(subjects.REQUEST_RECORDS)
    before = scrape(accounting)
    url = httpx.URL(accounting.base_url)
    try:
        _, writer = await asyncio.open_connection(url.host, url.port)
        head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: {url.host}\r\n"
        writer.write(
            f"{head}Content-Type: application/json\r\nContent-Length: 500\r\n\r\n".encode()
        )
        writer.write(b'{"model": "hello", "messa')  # and no more
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        while True:
            record = codec.decode((await records.next_msg(timeout=30)).data, RequestRecord)
            if record.route == "chat" and record.model == "":
                break
    finally:
        await nc.close()
    assert record.outcome == "cancelled"
    after = scrape(accounting)
    assert requests(after, "", "chat", "cancelled") == requests(before, "", "chat", "cancelled") + 1
    assert requests(after, "", "chat", "error") == requests(before, "", "chat", "error")
