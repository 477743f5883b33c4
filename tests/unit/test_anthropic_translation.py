"""Anthropic → the model's chat history, and the model's events → Anthropic (pure)."""

import json
from typing import Any

import msgspec
import pytest

from cortex_gateway import anthropic_messages as am
from cortex_gateway import anthropic_request as ar
from cortex_gateway.errors import ApiError
from cortex_gateway.inference import WAITING, Accepted
from cortex_wire.messages import Delta, Done, ReasoningDelta, ToolCallBlock, ToolCallFrame, Usage
from tests.support.replies import answer_of, chunks_of

# The shape Claude Code sends: system blocks, tools with input_schema, and a history with
# thinking, tool_use and tool_result blocks.
CLAUDE_CODE_LIKE = {
    "model": "m",
    "max_tokens": 1024,
    "system": [
        {"type": "text", "text": "You are Claude Code."},
        {"type": "text", "text": "Be concise.", "cache_control": {"type": "ephemeral"}},
    ],
    "tools": [
        {"name": "Read", "description": "Read a file",
         "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}},
    ],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "What is in a.txt?"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "read it", "signature": "sig"},
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a.txt"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "hello"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
             "content": [{"type": "text", "text": "not found"}]},
            {"type": "text", "text": "And?"},
        ]},
    ],
}  # fmt: skip


def parse(body: dict) -> ar.MessagesRequest:
    return ar.parse_request(json.dumps(body).encode())


def test_claude_code_like_request_becomes_one_history() -> None:
    request = parse(CLAUDE_CODE_LIKE)
    messages = ar.chat_messages(request.system, request.messages)
    assert [(m.role, m.content) for m in messages] == [
        ("system", "You are Claude Code.\nBe concise."),
        ("user", "What is in a.txt?"),
        ("assistant", "Let me look."),
        ("tool", "hello"),
        ("tool", "Error: not found"),
        ("user", "And?"),
    ]
    call = messages[2].tool_calls[0]
    assert (call.id, call.name, json.loads(call.arguments)) == (
        "toolu_1",
        "Read",
        {"path": "a.txt"},
    )
    assert [m.tool_call_id for m in messages[3:5]] == ["toolu_1", "toolu_2"]
    tools = ar.template_tools(request.tools, request.tool_choice)
    assert tools == [
        {"type": "function", "function": {"name": "Read", "description": "Read a file",
         "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}},
    ]  # fmt: skip


def test_tool_search_keeps_deferred_tools_out_until_a_result_loads_them() -> None:
    """Claude Code's tool search: deferred tools stay out of the prompt; ToolSearch's
    result names the ones it found (`tool_reference`), which the template then gets."""
    read = CLAUDE_CODE_LIKE["tools"][0]
    cron = {"name": "CronList", "input_schema": {"type": "object"}, "defer_loading": True}
    search = {"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_9", "name": "ToolSearch", "input": {"query": "cron"}},
    ]}  # fmt: skip
    found = {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_9",
         "content": [{"type": "tool_reference", "tool_name": "CronList"}]},
    ]}  # fmt: skip
    asked = [{"role": "user", "content": "find cron"}]
    for messages, offered in ((asked, ["Read"]), ([*asked, search, found], ["Read", "CronList"])):
        request = parse({**CLAUDE_CODE_LIKE, "tools": [read, cron], "messages": messages})
        fields = ar.template_fields(request, strip_billing=True)
        assert [tool["function"]["name"] for tool in fields["tools"]] == offered
    assert fields["messages"][-1].content == "[tool CronList loaded]"


def test_an_image_a_tool_returned_is_named_in_its_place() -> None:
    """Claude Code's Read of a screenshot or a PDF: the result's image stays in the history
    of every later turn, so it is named, not refused (an image the user sends is)."""
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
    }
    document = {"type": "document", "source": {"type": "base64", "data": "JVBE"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1",
              "content": [{"type": "text", "text": "a.png:"}, image, document]}  # fmt: skip
    request = parse({**CLAUDE_CODE_LIKE, "messages": [
        {"role": "user", "content": "Look at a.png"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a.png"}},
        ]},
        {"role": "user", "content": [result, {"type": "text", "text": "<reminder>"},
                                     {"type": "text", "text": "What is it?"}]},
    ]})  # fmt: skip
    messages = ar.chat_messages(request.system, request.messages)
    assert [(m.role, m.content) for m in messages[-2:]] == [
        ("tool", "a.png:\n[image omitted: the model reads text only]\n"
                 "[document omitted: the model reads text only]"),
        ("user", "<reminder>\nWhat is it?"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_tokens": None}, "max_tokens: field required"),
        ({"temperature": 1.5}, "temperature must be between 0 and 1"),
        (
            {
                "tool_choice": {"type": "any"},
                "thinking": {"type": "enabled", "budget_tokens": 1024},
            },
            "thinking may not be enabled when tool_choice forces tool use",
        ),
        ({"tool_choice": {"type": "tool"}}, 'tool_choice "tool" needs a name'),
        ({"thinking": {"type": "enabled"}}, "budget_tokens is required"),
        ({"thinking": {"type": "enabled", "budget_tokens": -1}}, "must be 0 or more, got -1"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            r"messages\[0\].content\[0\].text: a text block needs its text",
        ),
        ({"system": [{"type": "text"}]}, r"system\[0\].text: a text block needs its text"),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]},
            r"messages\[0\].content\[0\].tool_use_id: field required",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
            "image blocks are not supported",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "must be 'user', 'assistant' or"),
        ({"output_config": {"effort": "extreme"}}, "output_config.effort must be one of"),
        ({"output_config": {"format": {"type": "xml"}}}, "output_config.format must be"),
        ({"output_config": {"verbosity": 1}}, "unknown field `verbosity`"),
        ({"thinking": {"type": "sometimes"}}, "thinking.type must be one of"),
        ({"container": "c1"}, "'container' is not supported"),
        ({"mcp_servers": [{"type": "url", "url": "http://x"}]}, "'mcp_servers' is not supported"),
        ({"service_tier": "priority"}, "service_tier must be"),
        ({"top_logprobs": 3}, "unknown field `top_logprobs`"),
        (
            {"context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}},
            r"'context_management.edits\[0\].type' is not supported",
        ),
        ({"messages": []}, "at least one message"),
        ({"metadata": {"user_id": 5}}, r"Expected `str \| null`, got `int`"),
        ({"metadata": {"session": "s1"}}, "unknown field `session`"),
    ],
)
def test_bad_requests_are_named(change: dict, message: str) -> None:
    body = {**CLAUDE_CODE_LIKE, **change}
    if body.get("max_tokens") is None:
        body.pop("max_tokens")
    with pytest.raises(ApiError, match=message) as caught:
        request = parse(body)
        ar.chat_messages(request.system, request.messages)
    assert caught.value.status == 400
    assert caught.value.anthropic_body()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("change", "says", "where"),
    [
        ({"messages": [{"role": "user", "content": []}]}, "non-empty content", "[0]"),
        ({"messages": [{"role": "user", "content": ""}]}, "non-empty content", "[0]"),
        (
            {"messages": [{"role": "assistant", "content": []}, {"role": "user", "content": "x"}]},
            "non-empty content",
            "[0]",
        ),
        ({"tool_choice": {"type": "bogus"}}, "tool_choice.type must be one of", "tool_choice"),
    ],
)
def test_what_anthropic_refuses_is_refused_on_both_routes(change: dict, says: str, where: str):
    for route in (ar.parse_request, ar.parse_count):
        body = {**CLAUDE_CODE_LIKE, **change}
        if route is ar.parse_count:
            body.pop("max_tokens")
        with pytest.raises(ApiError, match=says) as caught:
            request = route(json.dumps(body).encode())
            ar.chat_messages(request.system, request.messages)
        assert caught.value.status == 400 and where in (caught.value.param or "")


def test_a_last_assistant_message_may_be_empty() -> None:
    body = {**CLAUDE_CODE_LIKE, "messages": [{"role": "user", "content": "x"},
                                              {"role": "assistant", "content": []}]}  # fmt: skip
    request = parse(body)
    assert [m.role for m in ar.chat_messages(request.system, request.messages)] == [
        "system", "user",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("tools", "choice", "says"),
    [
        (
            CLAUDE_CODE_LIKE["tools"],
            {"type": "tool", "name": "Write"},
            "names 'Write', which is not",
        ),
        ([], {"type": "any"}, "a forced tool choice needs at least one tool"),
    ],
)
def test_a_forced_choice_of_no_tool_is_refused_by_both_routes(tools, choice, says: str) -> None:
    """count_tokens answers what the request would cost: one /v1/messages refuses is
    refused there too."""
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": tools,
            "tool_choice": choice}  # fmt: skip
    counted, answered = json.dumps(body).encode(), json.dumps({**body, "max_tokens": 5}).encode()
    for parse_body, raw in ((ar.parse_count, counted), (ar.parse_request, answered)):
        with pytest.raises(ApiError, match=says) as caught:
            parse_body(raw)
        assert caught.value.param == "tool_choice"


def test_count_tokens_takes_what_the_sdk_sends_it() -> None:
    """Every field of the SDK's MessageCountTokensParams (and the beta one) that
    /v1/messages takes too, or that Anthropic's count ignores."""
    body = {
        "model": "m", "messages": [{"role": "user", "content": "x"}],
        "cache_control": {"type": "ephemeral"}, "speed": "fast", "user_profile_id": "u",
        "workspace_id": "w", "billing_policy": {"type": "x"}, "compaction": {"type": "y"},
    }  # fmt: skip
    ar.parse_count(json.dumps(body).encode())
    with pytest.raises(ApiError, match="unknown field `max_tokens`"):
        ar.parse_count(json.dumps({**body, "max_tokens": 5}).encode())


@pytest.mark.parametrize(
    ("raw", "says", "param"),
    [
        (b'{"model": "m", "max_tokens": 5', "request body is not valid JSON", None),
        (b'{"max_tokens": 5, "messages": []}', "invalid request: Object missing", "model"),
        (
            b'{"model": "m", "max_tokens": 5, "messages": [{"content": "x"}]}',
            "invalid request: Object missing required field `role`",
            "messages[0].role",
        ),
        (
            b'{"model": "m", "max_tokens": 5, "messages": [], "frobnicate": 1}',
            "invalid request: Object contains unknown field `frobnicate`",
            "frobnicate",
        ),
    ],
)
def test_a_body_that_does_not_fit_names_the_field(raw: bytes, says: str, param) -> None:
    with pytest.raises(ApiError) as caught:
        ar.parse_request(raw)
    assert caught.value.message.startswith(says) and caught.value.param == param
    assert caught.value.anthropic_body()["error"]["message"] == caught.value.message


ACCEPTED = Accepted("n", ["<think>", "</think>"], ["<tool_call>", "</tool_call>"])


def events(chunks: list[bytes]) -> list[tuple[str, dict]]:
    out = []
    for block in b"".join(chunks).decode().split("\n\n"):
        if block.strip():
            head, data = block.strip().split("\n", 1)
            out.append((head.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def streamed(items: list[Any], show_thinking: bool) -> list[bytes]:
    return chunks_of(am.messages_reply(show_thinking), [ACCEPTED, *items])


def whole(items: list[Any], show_thinking: bool) -> dict[str, Any]:
    body: dict[str, Any] = answer_of(am.messages_reply(show_thinking), [ACCEPTED, *items], False)
    return body


def test_blocks_in_order_with_stop_reason_and_usage() -> None:
    items = [
        ReasoningDelta(seq=0, text="hm"), Delta(seq=1, text="Hi"), WAITING,
        ToolCallBlock(seq=3, text='{"name": "Read", "arguments": {"path": "a"}}'),
        Done(seq=4, finish_reason="stop", usage=Usage(prompt_tokens=5, completion_tokens=7)),
    ]  # fmt: skip
    chunks = streamed(items, show_thinking=True)
    names = [name for name, _ in events(chunks)]
    assert names == [
        "message_start",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "ping",
        "content_block_stop", "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip
    body = whole(items, show_thinking=True)
    assert [b["type"] for b in body["content"]] == ["thinking", "text", "tool_use"]
    assert body["content"][2]["input"] == {"path": "a"}
    assert body["stop_reason"] == "tool_use"
    assert body["usage"] == {
        "input_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        "output_tokens": 7,
    }  # fmt: skip
    delta = events(chunks)[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"]["output_tokens"] == 7


def test_reasoning_is_hidden_unless_thinking_is_enabled() -> None:
    items = [
        Delta(seq=0, text="ans"), ReasoningDelta(seq=1, text="secret"), Delta(seq=2, text="wer"),
        Done(seq=3, finish_reason="stop", usage=Usage(), stop_sequence="END"),
    ]  # fmt: skip
    assert b"secret" not in b"".join(streamed(items, show_thinking=False))
    body = whole(items, show_thinking=False)
    assert body["content"] == [{"type": "text", "text": "answer"}]
    assert (body["stop_reason"], body["stop_sequence"]) == ("stop_sequence", "END")
    assert msgspec.json.encode(body)  # serialisable as is
    starts = [n for n, _ in events(streamed(items, False)) if n == "content_block_start"]
    assert len(starts) == 1  # one text block, as in the whole body


def test_thinking_display_omitted_sends_thinking_blocks_without_their_text() -> None:
    items = [
        ReasoningDelta(seq=0, text="sec"), ReasoningDelta(seq=1, text="ret"),
        Delta(seq=2, text="Hi"), Done(seq=3, finish_reason="stop", usage=Usage()),
    ]  # fmt: skip
    reply = am.messages_reply(True, omit_thinking=True)
    body: dict[str, Any] = answer_of(reply, [ACCEPTED, *items], False)
    assert body["content"] == [
        {"type": "thinking", "thinking": "", "signature": ""}, {"type": "text", "text": "Hi"},
    ]  # fmt: skip
    sent = events(chunks_of(reply, [ACCEPTED, *items]))
    assert b"sec" not in json.dumps(sent).encode()
    assert [e["content_block"]["type"] for n, e in sent if n == "content_block_start"] == [
        "thinking", "text",
    ]  # fmt: skip
    with pytest.raises(ApiError, match=r"thinking\.display"):
        parse({**CLAUDE_CODE_LIKE, "thinking": {"type": "adaptive", "display": "bogus"}})


def test_a_call_in_several_frames_streams_input_json_deltas_and_ends_whole() -> None:
    items = [
        ToolCallFrame(seq=1, index=0, name="Read", arguments='{"pa', complete=False),
        ToolCallFrame(seq=2, index=0, name="", arguments='th": "a"}'),
        # a stream that ends inside a call (max_tokens) still closes its block
        ToolCallFrame(seq=3, index=1, name="Ls", arguments='{"dir', complete=False),
        Done(seq=4, finish_reason="length", usage=Usage()),
    ]
    seen = events(streamed(items, show_thinking=False))
    deltas = [p["delta"]["partial_json"] for name, p in seen if name == "content_block_delta"]
    assert deltas == ['{"pa', 'th": "a"}', '{"dir']
    assert [name for name, _ in seen].count("content_block_stop") == 2
    body = whole(items, show_thinking=False)
    assert [(b["name"], b["input"]) for b in body["content"]] == [
        ("Read", {"path": "a"}),
        ("Ls", {}),
    ]
    assert body["stop_reason"] == "max_tokens"


def test_claude_codes_billing_line_is_dropped_and_system_messages_stay_in_place() -> None:
    request = parse({
        **CLAUDE_CODE_LIKE,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.68e; cch=9;"},
            {"type": "text", "text": "You are an agent.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "system", "content": [{"type": "text", "text": "a reminder"}]},
        ],
    })  # fmt: skip
    messages = ar.history(request, strip_billing=True)
    assert [(m.role, m.content) for m in messages] == [
        ("system", "You are an agent."), ("user", "hi"), ("system", "a reminder"),
    ]  # fmt: skip
    kept = ar.history(request, strip_billing=False)
    assert kept[0].content.startswith("x-anthropic-billing-header:")


def test_adaptive_thinking_takes_its_budget_and_level_from_the_effort() -> None:
    for effort, budget in (("low", 1024), ("high", 16384), ("max", None)):
        request = parse({**CLAUDE_CODE_LIKE, "thinking": {"type": "adaptive"},
                         "output_config": {"effort": effort}})  # fmt: skip
        assert ar.sampling_params(request).reasoning_budget == budget
        switch = ar.thinking_switch(request.thinking, request.output_config)
        assert switch == {"thinking": True, "reasoning_effort": ar.EFFORT_LEVELS[effort]}
    plain = parse({**CLAUDE_CODE_LIKE, "thinking": {"type": "adaptive"}})
    assert ar.sampling_params(plain).reasoning_budget is None  # the model decides


def test_output_format_is_constrained_decoding() -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    output = {"format": {"type": "json_schema", "schema": schema}}
    request = parse({**CLAUDE_CODE_LIKE, "output_config": output})
    assert ar.sampling_params(request).json_schema == schema


def test_clear_thinking_keeps_the_reasoning_of_the_last_turns_only() -> None:
    turns = [
        {"role": "user", "content": "1"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t1"},
                                          {"type": "text", "text": "a1"}]},
        {"role": "user", "content": "2"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t2"},
                                          {"type": "text", "text": "a2"}]},
        {"role": "user", "content": "3"},
    ]  # fmt: skip

    def reasoning(keep: object) -> list[str]:
        edits = {"edits": [{"type": ar.CLEAR_THINKING, "keep": keep}]}
        request = parse({**CLAUDE_CODE_LIKE, "messages": turns, "context_management": edits})
        return [m.reasoning for m in ar.history(request, True) if m.role == "assistant"]

    assert reasoning("all") == ["t1", "t2"]
    assert reasoning({"type": "thinking_turns", "value": 1}) == ["", "t2"]
    assert reasoning({"type": "thinking_turns", "value": 0}) == ["", ""]
