import json
from typing import Any

import pytest

from cortex_gateway import openai_chat
from cortex_gateway.errors import ApiError
from cortex_gateway.inference import Accepted
from cortex_wire.messages import Delta, Done, ReasoningDelta, ToolCallBlock, ToolCallFrame, Usage
from tests.support.replies import answer_of, chunks_of


def parse(body: dict) -> openai_chat.ChatCompletionRequest:
    return openai_chat.parse_request(json.dumps(body).encode())


def error_of(body: bytes | dict) -> ApiError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(ApiError) as caught:
        openai_chat.parse_request(raw)
    return caught.value


def test_valid_request_becomes_messages_and_params() -> None:
    request = parse(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
                },
            ],
            "max_completion_tokens": 5,
            "temperature": 0,
            "stop": "END",
            "seed": 7,
        }
    )
    messages = openai_chat.chat_messages(request)
    assert [(m.role, m.content) for m in messages] == [
        ("system", "Be brief."),
        ("user", "Hi there"),
    ]
    params = openai_chat.sampling_params(request)
    assert (params.max_tokens, params.temperature, params.stop, params.seed) == (5, 0.0, ["END"], 7)
    assert (params.top_k, params.min_p) == (0, 0.0)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        ({"model": "m"}, 400, "messages"),
        ({"model": "m", "messages": []}, 400, "messages"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, 400, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 9},
            400,
            "temperature",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
            400,
            "max_tokens",
        ),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 17}, 400, "n"),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            400,
            "messages[0].content[0].type",
        ),
        ({"model": "m", "messages": [{"role": "user"}]}, 400, "messages[0].content"),
        (
            {"model": "m", "messages": [{"role": "tool", "content": "22 C"}]},
            400,
            "messages[0].tool_call_id",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "a\u0000"}}],
            },
            400,
            "tools[0].function.name",
        ),
    ],
)
def test_bad_requests_get_400_naming_the_parameter(body, status: int, param: str | None) -> None:
    error = error_of(body)
    assert error.status == status
    assert error.param == param
    assert error.openai_body()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "says", "param"),
    [
        (b"{not json", "request body is not valid JSON", None),
        (b"  \n", "request body is empty", None),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "a 'text' content part needs its text",
            "messages[0].content[0].text",
        ),
        ({"messages": []}, "invalid request: Object missing required field `model`", "model"),
        (
            {"model": "m", "messages": [{"content": "x"}]},
            "invalid request: Object missing required field `role`",
            "messages[0].role",
        ),
        ({"model": 5, "messages": []}, "invalid request: Expected `str`, got `int`", "model"),
    ],
)
def test_json_that_does_not_fit_is_not_called_malformed(body, says: str, param) -> None:
    """Only malformed JSON is "not valid JSON"; valid JSON of the wrong shape names the
    field msgspec found at fault."""
    error = error_of(body)
    assert error.message.startswith(says) and error.param == param


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"functions": [{"name": "f", "parameters": {}}]}, "functions"),
        ({"function_call": "auto"}, "function_call"),
        ({"function_call": {"name": "f"}}, "function_call"),
    ],
)
def test_legacy_function_calling_is_refused_by_name(extra: dict, param: str) -> None:
    error = error_of({"model": "m", "messages": [{"role": "user", "content": "x"}], **extra})
    assert error.param == param and error.code == "unsupported_parameter"
    assert "use `tools` / `tool_choice`" in error.message


def test_empty_content_is_a_message_but_no_parts_is_not() -> None:
    parse({"model": "m", "messages": [{"role": "user", "content": ""}]})
    error = error_of({"model": "m", "messages": [{"role": "user", "content": []}]})
    assert error.param == "messages[0].content" and "empty array" in error.message


def test_image_content_is_rejected_clearly() -> None:
    error = error_of(
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}
    )
    assert "image_url" in error.message


ACCEPTED = Accepted("n", ["<think>", "</think>"], ["<tool_call>", "</tool_call>"])


def streamed(items: list[Any], include_usage: bool = False, inline: bool = False) -> list[bytes]:
    """Each event's bytes on their own, as separate chunks."""
    reply = openai_chat.chat_reply(include_usage)
    return [
        chunk for write in chunks_of(reply, [ACCEPTED, *items], inline)
        for chunk in split_sse(write)
    ]  # fmt: skip


def whole(items: list[Any], inline: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = answer_of(openai_chat.chat_reply(False), [ACCEPTED, *items], False,
                                     inline)  # fmt: skip
    return body


def split_sse(write: bytes) -> list[bytes]:
    return [block + b"\n\n" for block in write.split(b"\n\n") if block]


def sse_payloads(chunks: list[bytes]) -> list[object]:
    out = []
    for chunk in chunks:
        text = chunk.decode()
        assert text.startswith("data: ") and text.endswith("\n\n")
        payload = text[len("data: ") : -2]
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_response_shapes_and_usage() -> None:
    usage = Usage(prompt_tokens=3, completion_tokens=2, cached_tokens=1, reasoning_tokens=1)
    items = [
        ReasoningDelta(seq=0, text="hmm"), Delta(seq=1, text="hi"),
        Done(seq=2, finish_reason="length", usage=usage),
    ]  # fmt: skip
    body = whole(items)
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "hi",
        "reasoning_content": "hmm",
    }
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {
        "prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 1},
        "completion_tokens_details": {"reasoning_tokens": 1},
    }  # fmt: skip
    events = sse_payloads(streamed(items, include_usage=True))
    assert [e["choices"][0]["delta"] for e in events[:3]] == [
        {"role": "assistant", "content": ""}, {"reasoning_content": "hmm"}, {"content": "hi"},
    ]  # fmt: skip
    assert events[3]["choices"][0]["finish_reason"] == "length"
    assert events[4]["choices"] == [] and events[4]["usage"]["total_tokens"] == 5
    assert events[5] == "[DONE]"


def test_tool_block_becomes_tool_calls_and_bad_block_stays_text() -> None:
    good = ToolCallBlock(seq=0, text='{"name": "get_weather", "arguments": {"city": "Paris"}}')
    bad = ToolCallBlock(seq=1, text="not json")
    items = [good, bad, Done(seq=2, finish_reason="stop", usage=Usage())]
    body = whole(items)
    message = body["choices"][0]["message"]
    assert message["content"] == "<tool_call>not json</tool_call>"
    assert [
        (c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in message["tool_calls"]
    ] == [("get_weather", {"city": "Paris"})]
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    first = sse_payloads(streamed(items))[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["tool_calls"][0]["index"] == 0


def test_inline_thinking_wraps_reasoning_in_the_models_markers() -> None:
    items = [
        ReasoningDelta(seq=0, text="a"), ReasoningDelta(seq=1, text="b"),
        Delta(seq=2, text="answer"), Done(seq=3, finish_reason="stop", usage=Usage()),
    ]  # fmt: skip
    body = whole(items, inline=True)
    assert body["choices"][0]["message"]["content"] == "<think>ab</think>answer"
    assert "reasoning_content" not in body["choices"][0]["message"]
    deltas = [e["choices"][0]["delta"] for e in sse_payloads(streamed(items, inline=True))[:-1]]
    assert "".join(d.get("content") or "" for d in deltas) == "<think>ab</think>answer"


def test_inline_thinking_that_never_closes_is_closed_at_the_finish() -> None:
    items = [ReasoningDelta(seq=0, text="a"), Done(seq=1, finish_reason="length", usage=Usage())]
    assert whole(items, inline=True)["choices"][0]["message"]["content"] == "<think>a</think>"


def test_a_call_in_several_frames_streams_its_arguments_as_deltas() -> None:
    items = [
        Delta(seq=1, text="On it."),
        ToolCallFrame(seq=2, index=0, name="Read", arguments="", complete=False),
        ToolCallFrame(seq=3, index=0, name="", arguments='{"path": "a', complete=False),
        ToolCallFrame(seq=4, index=0, name="", arguments='.txt"}'),
        ToolCallFrame(seq=5, index=1, name="Ls", arguments="{}"),
        Done(seq=6, finish_reason="stop", usage=Usage()),
    ]
    deltas = [e["choices"][0]["delta"] for e in sse_payloads(streamed(items))[:-1] if e["choices"]]
    calls = [t for d in deltas for t in d.get("tool_calls", [])]
    assert [(t["index"], t.get("id", "")[:5], t["function"]) for t in calls] == [
        (0, "call_", {"name": "Read", "arguments": ""}),
        (0, "", {"arguments": '{"path": "a'}),
        (0, "", {"arguments": '.txt"}'}),
        (1, "call_", {"name": "Ls", "arguments": ""}),
        (1, "", {"arguments": "{}"}),
    ]
    body = whole(items)
    message = body["choices"][0]["message"]
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in message["tool_calls"]] == [
        ("Read", '{"path": "a.txt"}'), ("Ls", "{}"),
    ]  # fmt: skip
    assert body["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(("effort", "budget"), [("xhigh", 16384), ("max", None)])
def test_efforts_above_high_are_taken(effort: str, budget: int | None) -> None:
    """The openai SDK's efforts above "high": the template's own highest word, a larger
    budget (none for max)."""
    chat = openai_chat.decode_body(
        json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}],
                    "reasoning_effort": effort}).encode(), openai_chat.ChatCompletionRequest,
    )  # fmt: skip
    openai_chat.validate(chat)
    assert openai_chat.thinking_of(effort) == {"thinking": True, "reasoning_effort": "high"}
    assert openai_chat.sampling_params(chat).reasoning_budget == budget


def test_a_call_item_cut_off_is_incomplete() -> None:
    from cortex_gateway.events import Part
    from cortex_gateway.openai_responses import cut_status

    cut = Part("call", call=openai_chat.ParsedCall("c1", "get_weather", '{"city": "Par'))
    whole = Part("call", call=openai_chat.ParsedCall("c1", "get_weather", '{"city": "Paris"}'))
    assert (cut_status("incomplete", cut), cut_status("incomplete", whole)) == (
        "incomplete", "completed",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("route", "extra", "param"),
    [
        ("chat", {"verbosity": "low"}, "verbosity"),
        ("responses", {"conversation": "conv_1"}, "conversation"),
        ("responses", {"background": True}, "background"),
        ("responses", {"prompt": {"id": "pmpt_1"}}, "prompt"),
        ("responses", {"text": {"verbosity": "high"}}, "text.verbosity"),
    ],
)
def test_what_would_change_the_answer_but_is_not_done_is_refused(
    route: str, extra: dict, param: str
) -> None:
    """Left out silently, each would change what the client gets (a conversation's
    history lost, an answer at once where one queued was asked for)."""
    from cortex_gateway import openai_responses

    user = [{"role": "user", "content": "x"}]
    if route == "chat":
        body, parser = {"model": "m", "messages": user}, openai_chat.parse_request
    else:
        body, parser = {"model": "m", "input": "x"}, openai_responses.parse_request
    with pytest.raises(ApiError) as refused:
        parser(json.dumps({**body, **extra}).encode())
    assert (refused.value.param, refused.value.code) == (param, "unsupported_parameter")
    default = {"verbosity": "medium"} if route == "chat" else {"text": {"verbosity": "medium"}}
    parser(json.dumps({**body, **default}).encode())  # the default changes nothing: taken


def test_a_refusal_in_the_history_is_the_assistants_text() -> None:
    """The SDK replays an assistant turn that refused as a "refusal" part."""
    refused = {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]}
    called = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
    ]}  # fmt: skip
    request = parse({"model": "m", "messages": [
        {"role": "user", "content": "x"}, refused, {"role": "user", "content": "y"}, called,
    ]})  # fmt: skip
    messages = openai_chat.chat_messages(request)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "x"), ("assistant", "I can't."), ("user", "y"), ("assistant", ""),
    ]  # fmt: skip


def _fn(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {}}}


@pytest.mark.parametrize(
    ("tools", "param", "says"),
    [
        ([_fn("f"), _fn("f")], "tools[1].function.name", "'f' names two tools"),
        ([_fn("")], "tools[0].function.name", "must not be empty"),
    ],
)
def test_each_tool_has_a_name_of_its_own(tools: list, param: str, says: str) -> None:
    """A call finds its tool by name: two of one name (or none) are the client's error,
    in each API."""
    from cortex_gateway import anthropic_request, openai_responses

    user = [{"role": "user", "content": "x"}]
    error = error_of({"model": "m", "messages": user, "tools": tools})
    assert (error.param, says in error.message) == (param, True)
    flat = [{"type": "function", **tool["function"]} for tool in tools]
    with pytest.raises(ApiError, match=says) as responses:
        openai_responses.parse_request(
            json.dumps({"model": "m", "input": "x", "tools": flat}).encode()
        )
    assert responses.value.param == param.replace("function.", "")
    anthropic = [{"name": tool["function"]["name"], "input_schema": {}} for tool in tools]
    body = {"model": "m", "max_tokens": 8, "messages": user, "tools": anthropic}
    with pytest.raises(ApiError, match=says):
        request = anthropic_request.parse_request(json.dumps(body).encode())
        anthropic_request.template_tools(request.tools, request.tool_choice)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"ignore_eos": True}, "ignore_eos"),
        ({"min_tokens": 5}, "min_tokens"),
        ({"include_stop_str_in_output": True}, "include_stop_str_in_output"),
        ({"guided_json": {"type": "object"}}, "guided_json"),
        ({"grammar": 'root ::= "x"'}, "grammar"),
        ({"typical_p": 0.5}, "typical_p"),
    ],
)
def test_another_servers_parameter_that_changes_the_output_is_refused(
    extra: dict, param: str
) -> None:
    """vLLM's and llama-server's parameters come through extra_body: each changes the
    output, so it is refused by name (the values that change nothing are taken)."""
    from cortex_gateway import openai_completions

    chat = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    for body, parser in (
        (chat, openai_chat.parse_request),
        ({"model": "m", "prompt": "x"}, openai_completions.parse_request),
    ):
        with pytest.raises(ApiError) as refused:
            parser(json.dumps({**body, **extra}).encode())
        assert (refused.value.param, refused.value.code) == (param, "unsupported_parameter")
    neutral = {"ignore_eos": False, "min_tokens": 0, "typical_p": 1.0, "cache_prompt": True}
    openai_chat.parse_request(json.dumps({**chat, **neutral}).encode())


def test_completions_take_the_repetition_penalty_by_either_name() -> None:
    from cortex_gateway import openai_completions as oc

    for name in ("repeat_penalty", "repetition_penalty"):
        body = json.dumps({"model": "m", "prompt": "x", name: 1.3}).encode()
        assert oc.sampling_params(oc.parse_request(body)).repeat_penalty == 1.3
    with pytest.raises(ApiError, match="repetition_penalty"):
        oc.parse_request(
            json.dumps({"model": "m", "prompt": "x", "repetition_penalty": 11}).encode()
        )


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_an_assistant_turns_reasoning_goes_back_by_either_name(field: str) -> None:
    request = parse({"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello", field: "they greeted me"},
        {"role": "user", "content": "and?"},
    ]})  # fmt: skip
    assert openai_chat.chat_messages(request)[1].reasoning == "they greeted me"


def test_responses_truncation_drops_whole_turns_and_keeps_the_system_messages() -> None:
    from cortex_gateway.openai_responses import without_oldest_turn
    from cortex_wire.messages import ChatMessage, ToolCall

    def m(role: str, content: str, **extra: Any) -> ChatMessage:
        return ChatMessage(role=role, content=content, **extra)

    call = [ToolCall(id="c1", name="f", arguments="{}")]
    history = [
        m("system", "rules"), m("user", "u1"), m("assistant", "", tool_calls=call),
        m("tool", "r1", tool_call_id="c1"), m("assistant", "a1"), m("user", "u2"),
    ]  # fmt: skip
    shorter = without_oldest_turn(history)
    assert shorter is not None and [x.content for x in shorter] == ["rules", "u2"]
    assert without_oldest_turn(shorter) is None  # the last turn stays


def test_a_body_nested_past_any_sense_is_a_400() -> None:
    """(msgspec raised RecursionError: a 500 on every route.)"""
    deep = b'{"model": "m", "messages": [], "metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert "nested too deeply" in error_of(deep).message
