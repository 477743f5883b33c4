"""Every dialect's stream, folded the way its clients fold it, equals its whole answer: the
same events (reasoning, text, a call in parts, a whole call, the end) go through each
projection once streamed and once not, and what the client ends up with is the same."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cortex_gateway import anthropic_messages, ollama_api, openai_chat, openai_completions
from cortex_gateway import openai_responses as responses
from cortex_gateway.inference import Accepted, StreamItem
from cortex_gateway.projection import Reply
from cortex_wire.messages import (
    Delta,
    Done,
    Failed,
    ReasoningDelta,
    ToolCallFrame,
    Usage,
    WireError,
)
from tests.support.replies import answer_of

USAGE = Usage(prompt_tokens=5, completion_tokens=9, reasoning_tokens=3)
EVENTS: list[StreamItem] = [
    Accepted(node="n", reasoning_markers=["<think>", "</think>"]),
    ReasoningDelta(seq=1, text="Let me ", tokens=2),
    ReasoningDelta(seq=2, text="think", tokens=1),
    Delta(seq=3, text="Hello", tokens=1),
    Delta(seq=4, text=", world", tokens=2),
    ToolCallFrame(seq=5, index=0, name="get_weather", arguments='{"city": ', complete=False),
    ToolCallFrame(seq=6, index=0, name="", arguments='"Paris"}'),
    ToolCallFrame(seq=7, index=1, name="now", arguments="{}"),
    Done(seq=8, finish_reason="stop", usage=USAGE),
]
CALLS = [("get_weather", {"city": "Paris"}), ("now", {})]


def run(reply: Reply, stream: bool) -> Any:
    return answer_of(reply, EVENTS, stream)


def sse_data(raw: bytes) -> list[Any]:
    events = []
    for block in raw.decode().split("\n\n"):
        data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        if data and data[0] != "[DONE]":
            events.append(json.loads("".join(data)))
    return events


# --- how each API's clients fold a stream ------------------------------------------------


def fold_chat(raw: bytes) -> dict[str, Any]:
    content, reasoning, calls, finish = "", "", {}, None
    for chunk in sse_data(raw):
        for choice in chunk["choices"]:
            delta = choice["delta"]
            content += delta.get("content") or ""
            reasoning += delta.get("reasoning_content") or ""
            for part in delta.get("tool_calls") or []:
                entry = calls.setdefault(part["index"], {"name": "", "arguments": ""})
                entry["name"] += part["function"].get("name") or ""
                entry["arguments"] += part["function"].get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    folded = [(c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())]
    return {"content": content, "reasoning": reasoning, "calls": folded, "finish": finish}


def whole_chat(body: dict[str, Any]) -> dict[str, Any]:
    message = body["choices"][0]["message"]
    calls = [
        (c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in message.get("tool_calls") or []
    ]
    return {
        "content": message["content"] or "", "reasoning": message.get("reasoning_content", ""),
        "calls": calls, "finish": body["choices"][0]["finish_reason"],
    }  # fmt: skip


def fold_messages(raw: bytes) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    stop = None
    for event in sse_data(raw):
        if event["type"] == "content_block_start":
            blocks.append({**event["content_block"], "partial": ""})
        elif event["type"] == "content_block_delta":
            delta, block = event["delta"], blocks[event["index"]]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "input_json_delta":
                block["partial"] += delta["partial_json"]
        elif event["type"] == "message_delta":
            stop = event["delta"]["stop_reason"]
    for block in blocks:
        if block["type"] == "tool_use":
            block["input"] = json.loads(block["partial"])
    return {"content": [_block(b) for b in blocks], "stop": stop}


def _block(block: dict[str, Any]) -> tuple[str, Any]:
    kind = block["type"]
    value = {"text": "text", "thinking": "thinking"}.get(kind)
    return (kind, block[value]) if value else (kind, (block["name"], block["input"]))


def whole_messages(body: dict[str, Any]) -> dict[str, Any]:
    return {"content": [_block(b) for b in body["content"]], "stop": body["stop_reason"]}


def fold_responses(raw: bytes) -> dict[str, Any]:
    text, reasoning, arguments, names = "", "", {}, {}
    for event in sse_data(raw):
        kind = event["type"]
        if kind == "response.output_text.delta":
            text += event["delta"]
        elif kind == "response.reasoning_text.delta":
            reasoning += event["delta"]
        elif kind == "response.output_item.added" and event["item"]["type"] == "function_call":
            names[event["output_index"]] = event["item"]["name"]
        elif kind == "response.function_call_arguments.delta":
            arguments[event["output_index"]] = (
                arguments.get(event["output_index"], "") + event["delta"]
            )
    calls = [(names[i], json.loads(arguments.get(i, "{}"))) for i in sorted(names)]
    return {"text": text, "reasoning": reasoning, "calls": calls}


def whole_responses(body: dict[str, Any]) -> dict[str, Any]:
    out = body["output"]
    return {
        "text": "".join(c["text"] for i in out if i["type"] == "message" for c in i["content"]),
        "reasoning": "".join(
            c["text"] for i in out if i["type"] == "reasoning" for c in i["content"]
        ),
        "calls": [
            (i["name"], json.loads(i["arguments"])) for i in out if i["type"] == "function_call"
        ],
    }  # fmt: skip


def fold_ollama(raw: bytes) -> dict[str, Any]:
    lines = [json.loads(line) for line in raw.decode().splitlines() if line]
    assert [line["done"] for line in lines].count(True) == 1 and lines[-1]["done"]
    return whole_ollama({
        "message": {
            "content": "".join(line["message"]["content"] for line in lines),
            "thinking": "".join(line["message"].get("thinking", "") for line in lines),
            "tool_calls": [c for line in lines for c in line["message"].get("tool_calls", [])],
        },
        **{k: v for k, v in lines[-1].items() if k.endswith("count") or k == "done_reason"},
    })  # fmt: skip


def whole_ollama(body: dict[str, Any]) -> dict[str, Any]:
    message = body["message"]
    calls = [
        (c["function"]["name"], c["function"]["arguments"]) for c in message.get("tool_calls", [])
    ]
    return {
        "content": message["content"], "thinking": message.get("thinking", ""), "calls": calls,
        "counts": (body["prompt_eval_count"], body["eval_count"], body["done_reason"]),
    }  # fmt: skip


def fold_completion(raw: bytes) -> dict[str, Any]:
    text = "".join(c["text"] for chunk in sse_data(raw) for c in chunk["choices"])
    return {"text": text}


def whole_completion(body: dict[str, Any]) -> dict[str, Any]:
    return {"text": body["choices"][0]["text"]}


DIALECTS = {
    "chat": (openai_chat.chat_reply(include_usage=True), fold_chat, whole_chat),
    "messages": (anthropic_messages.messages_reply(show_thinking=True), fold_messages,
                 whole_messages),
    "responses": (responses.responses_reply(responses.ResponsesRequest(model="m", input="hi")),
                  fold_responses, whole_responses),
    "ollama-chat": (ollama_api.ollama_reply("chat"), fold_ollama, whole_ollama),
    "completions": (openai_completions.completion_reply(include_usage=True), fold_completion,
                    whole_completion),
}  # fmt: skip


@pytest.mark.parametrize("name", DIALECTS)
def test_folding_the_stream_gives_the_whole_answer(name: str) -> None:
    reply, fold, whole = DIALECTS[name]
    folded = fold(run(reply, stream=True))
    assert folded == whole(run(reply, stream=False))
    if name != "completions":  # text completions carry no calls (they stay text)
        assert CALLS == (
            folded.get("calls") or [v for k, v in folded.get("content", []) if k == "tool_use"]
        )


FAILING: list[StreamItem] = [
    Accepted(node="n", reasoning_markers=[]),
    Delta(seq=1, text="Hel", tokens=1),
    Failed(seq=2, error=WireError(code="stream_timeout", message="the neuron went silent")),
]


def last_event(name: str, raw: bytes) -> Any:
    if name.startswith("ollama"):
        return json.loads(raw.decode().splitlines()[-1])
    return sse_data(raw)[-1]


@pytest.mark.parametrize("name", DIALECTS)
def test_a_stream_that_fails_after_it_started_says_so_last(name: str) -> None:
    reply = DIALECTS[name][0]
    raw = answer_of(reply, FAILING, stream=True)
    assert b"Hel" in raw  # what was said before the failure reached the client
    last = last_event(name, raw)
    if name == "responses":
        assert last["type"] == "response.failed"
        assert last["response"]["status"] == "failed"
        assert last["response"]["error"]["code"] == "stream_timeout"
        assert last["response"]["output"][0]["content"][0]["text"] == "Hel"
    elif name == "messages":
        error = {"type": "overloaded_error", "message": "the neuron went silent"}
        assert last == {"type": "error", "error": error, "request_id": "r1"}
    else:
        assert "the neuron went silent" in json.dumps(last)
