"""Every dialect through its official SDK against the whole stack: Anthropic messages (text,
thinking, budgets, tools, stop reasons, count_tokens, errors) and OpenAI tools, formats and
rejected parameters."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest
from pydantic import BaseModel

from tests.conftest import write_catalogue
from tests.support.stack import RunningStack, running_gateway, running_stack, stack_settings
from tests.support.tiny_gguf import DEFAULT_SPECIALS, FIM_KEYS, TinyModel, build_tiny_gguf

CALL = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
# ChatML that also renders tools, tool calls and tool results the way tool-calling
# templates do, so what reaches the template changes the prompt.
TOOLS_TEMPLATE = (
    "{% if tools %}{{ '<|im_start|>system\\nTools: ' + (tools | tojson) + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] }}"
    "{% for call in message.tool_calls or [] %}"
    "{{ '<tool_call>' + (call.function | tojson) + '</tool_call>' }}{% endfor %}"
    "{% if message.tool_call_id %}{{ ' (result of ' + message.tool_call_id + ')' }}{% endif %}"
    "{{ '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
STRICT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and not loop.first %}"
    "{{ raise_exception('System message must be at the beginning.') }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Only the messages' text: an empty message renders nothing at all.
BARE_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def api_stack(nats_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    folder: Path = tmp_path_factory.mktemp("api")
    hello = build_tiny_gguf(
        folder / "hello.gguf", ("Hello", ",", " world", "!"), chat_template=TOOLS_TEMPLATE
    )
    think = build_tiny_gguf(
        folder / "think.gguf", ("<think>", "Let", " me", " think", "</think>", "Hello", "!")
    )
    tool = build_tiny_gguf(
        folder / "tool.gguf", ("<tool_call>", CALL, "</tool_call>"), chat_template=TOOLS_TEMPLATE
    )
    bad_tool = build_tiny_gguf(folder / "bad.gguf", ("<tool_call>", "not json", "</tool_call>"))
    # A template that takes a system message only at the start, as many do.
    strict = build_tiny_gguf(folder / "strict.gguf", ("Hello", "!"), chat_template=STRICT_TEMPLATE)
    endless = build_tiny_gguf(folder / "endless.gguf", ("tick", " tock"), endless=True, n_ctx=64)
    # A code model: its reply starts where a fill-in-the-middle prompt ends.
    fim = build_tiny_gguf(
        folder / "fim.gguf", ("return", " x"), specials=(*DEFAULT_SPECIALS, *FIM_KEYS),
        start="<|fim_middle|>",
    )  # fmt: skip
    bare = build_tiny_gguf(folder / "bare.gguf", ("Hello", "!"), chat_template=BARE_TEMPLATE)
    models = write_catalogue(
        folder / "models.toml",
        [
            {"id": "hello", "path": str(hello.path), "n_ctx": 512},
            # Two at a time, running and waiting: what a smaller request must fit.
            {"id": "narrow", "path": str(hello.path), "n_ctx": 512, "max_queue_depth": 1},
            {"id": "bare", "path": str(bare.path), "n_ctx": 256},
            {"id": "think", "path": str(think.path), "n_ctx": 256},
            {"id": "tool", "path": str(tool.path), "n_ctx": 512},
            {"id": "bad-tool", "path": str(bad_tool.path), "n_ctx": 256},
            {"id": "strict", "path": str(strict.path), "n_ctx": 512},
            {"id": "endless", "path": str(endless.path), "n_ctx": 64},
            {"id": "fim", "path": str(fim.path), "n_ctx": 256},
        ],
    )
    with running_stack(stack_settings(nats_server.url, models, node="api-neuron")) as stack:
        yield stack


@pytest.fixture
def claude(api_stack: RunningStack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=api_stack.base_url, api_key="unused", max_retries=0)


@pytest.fixture
def gpt(api_stack: RunningStack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{api_stack.base_url}/v1", api_key="unused", max_retries=0)


HI = [{"role": "user", "content": "Hi"}]


# --- Anthropic -------------------------------------------------------------------------


def test_messages_non_streaming(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="hello", max_tokens=64, messages=HI)
    assert [(b.type, b.text) for b in message.content] == [("text", "Hello, world!")]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.role == "assistant" and message.model == "hello"
    assert message.usage.output_tokens == 4 and message.usage.input_tokens > 0


def test_messages_stream_event_order_and_final_message(
    claude: anthropic.Anthropic, api_stack
) -> None:
    with claude.messages.stream(model="hello", max_tokens=64, messages=HI) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert final.content[0].text == "Hello, world!"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 4
    raw = [e for e in events if not e.startswith(("text", "input_json"))]  # SDK helper events
    assert raw[0] == "message_start" and raw[-1] == "message_stop"
    assert raw[1:-2] == ["content_block_start"] + ["content_block_delta"] * (len(raw) - 5) + [
        "content_block_stop"
    ]
    assert raw[-2] == "message_delta"


def test_thinking_blocks_only_when_enabled_and_budget_closes_reasoning(
    claude: anthropic.Anthropic,
) -> None:
    plain = claude.messages.create(model="think", max_tokens=64, messages=HI)
    assert [(b.type, getattr(b, "text", None)) for b in plain.content] == [("text", "Hello!")]

    thinking = {"type": "enabled", "budget_tokens": 1024}
    shown = claude.messages.create(model="think", max_tokens=64, messages=HI, thinking=thinking)
    assert [b.type for b in shown.content] == ["thinking", "text"]
    assert shown.content[0].thinking == "Let me think" and shown.content[1].text == "Hello!"

    with claude.messages.stream(
        model="think", max_tokens=64, messages=HI, thinking=thinking
    ) as stream:
        streamed = stream.get_final_message()
    assert [b.type for b in streamed.content] == ["thinking", "text"]

    # Two reasoning tokens (the open marker and "Let"): then the neuron closes the reasoning
    # and the model goes on to answer.
    budget = {"type": "enabled", "budget_tokens": 2}
    cut = claude.messages.create(model="think", max_tokens=64, messages=HI, thinking=budget)
    assert cut.content[0].thinking == "Let" and cut.content[1].text == "Hello!"


def test_stop_sequences_and_max_tokens_stop_reasons(claude: anthropic.Anthropic) -> None:
    stopped = claude.messages.create(
        model="hello", max_tokens=64, messages=HI, stop_sequences=[" wor"]
    )
    assert stopped.content[0].text == "Hello,"
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", " wor")
    cut = claude.messages.create(model="hello", max_tokens=2, messages=HI)
    assert cut.stop_reason == "max_tokens" and cut.content[0].text == "Hello,"


def test_tool_use_stream_and_non_stream(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="tool", max_tokens=64, messages=HI, tools=[WEATHER_TOOL])
    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert (block.type, block.name, block.input) == ("tool_use", "get_weather", {"city": "Paris"})
    assert block.id.startswith("toolu_")
    with claude.messages.stream(
        model="tool", max_tokens=64, messages=HI, tools=[WEATHER_TOOL]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[0].input == {"city": "Paris"}


def test_unparseable_tool_block_stays_text(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="bad-tool", max_tokens=64, messages=HI)
    assert message.content[0].text == "<tool_call>not json</tool_call>"
    assert message.stop_reason == "end_turn"


def test_claude_code_like_history_translates_and_counts_exactly(
    claude: anthropic.Anthropic,
) -> None:
    history = [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "use the tool", "signature": "x"},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
             "input": {"city": "Paris"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1",
             "content": [{"type": "text", "text": "Sunny"}]},
            {"type": "text", "text": "Thanks"},
        ]},
    ]  # fmt: skip
    system = [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Be kind."}]
    kwargs = {"model": "hello", "messages": history, "system": system, "tools": [WEATHER_TOOL]}
    counted = claude.messages.count_tokens(**kwargs)
    message = claude.messages.create(max_tokens=8, **kwargs)
    usage = message.usage  # Anthropic's input_tokens leave out what the cache held
    assert counted.input_tokens == usage.input_tokens + (usage.cache_read_input_tokens or 0)
    bare = claude.messages.count_tokens(model="hello", messages=history, system=system)
    assert bare.input_tokens < counted.input_tokens  # the tools reached the template


def test_anthropic_errors_use_its_envelope(claude: anthropic.Anthropic, api_stack) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude.messages.create(model="nope", max_tokens=8, messages=HI)
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    image = [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "AA=="},
                }
            ],
        }
    ]
    with pytest.raises(anthropic.BadRequestError, match="image blocks are not supported"):
        claude.messages.create(model="hello", max_tokens=8, messages=image)
    response = httpx.post(
        f"{api_stack.base_url}/v1/messages", json={"model": "hello", "messages": HI}, timeout=30
    )
    assert response.status_code == 400
    assert response.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: field required"},
        "request_id": response.headers["request-id"],
    }


def test_adaptive_thinking_with_an_effort_streamed_and_not(claude: anthropic.Anthropic) -> None:
    kwargs: dict[str, Any] = {
        "model": "think", "max_tokens": 40, "messages": HI, "thinking": {"type": "adaptive"},
        "output_config": {"effort": "low"},
    }  # fmt: skip
    message = claude.messages.create(**kwargs)
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[1].text == "Hello!"  # type: ignore[union-attr]
    with claude.messages.stream(**kwargs) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    counted = claude.messages.count_tokens(
        model="think", messages=HI, thinking={"type": "adaptive"}, output_config={"effort": "low"}
    )
    usage = message.usage
    assert counted.input_tokens == usage.input_tokens + (usage.cache_read_input_tokens or 0)


class Counted(BaseModel):
    n: int


def test_output_format_constrains_the_answer_and_parse_reads_it(
    claude: anthropic.Anthropic,
) -> None:
    # A tiny model writes garbage under a grammar; an integer field bounds it (a string one
    # would run on), and the answer still has to be the JSON the schema describes.
    parsed = claude.messages.parse(model="hello", max_tokens=60, messages=HI, output_format=Counted)
    assert isinstance(parsed.parsed_output, Counted)
    schema = {"type": "object", "properties": {"s": {"type": "string", "maxLength": 8}},
              "required": ["s"]}  # fmt: skip
    message = claude.messages.create(
        model="hello", max_tokens=60, messages=HI,
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )  # fmt: skip
    # strict JSON: no raw control characters inside the string
    assert isinstance(json.loads(message.content[0].text)["s"], str)  # type: ignore[union-attr]


def test_system_messages_inside_the_conversation(claude: anthropic.Anthropic) -> None:
    history: list[Any] = [
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": [{"type": "text", "text": "Answer in one word."}]},
    ]
    for model in ("hello", "strict"):  # strict: the template takes system only at the start
        counted = claude.messages.count_tokens(model=model, messages=history)
        message = claude.messages.create(model=model, max_tokens=8, messages=history)
        usage = message.usage
        assert counted.input_tokens == usage.input_tokens + (usage.cache_read_input_tokens or 0)
        assert (
            counted.input_tokens
            > claude.messages.count_tokens(model=model, messages=HI).input_tokens
        )  # the system message reached the prompt
        assert message.content[0].text.startswith("Hello")  # type: ignore[union-attr]


def test_a_prompt_over_the_context_is_a_400_before_any_stream(
    claude: anthropic.Anthropic, gpt: openai.OpenAI
) -> None:
    long = [{"role": "user", "content": "word " * 400}]  # the think model holds 256 tokens
    too_long = r"prompt is too long: \d+ tokens > 255 maximum \(model 'think'"
    with pytest.raises(anthropic.BadRequestError, match=too_long):
        with claude.messages.stream(model="think", max_tokens=8, messages=long) as stream:
            stream.get_final_message()
    with pytest.raises(openai.BadRequestError) as chat:
        for _ in gpt.chat.completions.create(model="think", messages=long, stream=True):
            pass
    assert chat.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError, match="context of 256 tokens"):
        for _ in gpt.responses.create(model="think", input="word " * 400, stream=True):
            pass


def test_a_full_context_has_its_own_stop_reason(
    claude: anthropic.Anthropic, gpt: openai.OpenAI
) -> None:
    message = claude.messages.create(model="endless", max_tokens=1000, messages=HI)
    assert message.stop_reason == "model_context_window_exceeded"
    capped = claude.messages.create(model="endless", max_tokens=3, messages=HI)
    assert capped.stop_reason == "max_tokens"
    chat = gpt.chat.completions.create(model="endless", messages=HI, max_tokens=1000)
    assert chat.choices[0].finish_reason == "length"


def test_a_route_not_served_says_so(
    api_stack: RunningStack, gpt: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    """A client of an API cortex does not serve (files, moderations) learns what is wrong."""
    with pytest.raises(openai.NotFoundError, match=r"POST /v1/moderations: no such route"):
        gpt.moderations.create(input="x")
    with pytest.raises(anthropic.NotFoundError) as refused:  # in its client's own shape
        claude.beta.files.list()
    assert refused.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert refused.value.request_id and "GET /v1/files: no such route" in refused.value.message
    wrong = httpx.delete(f"{api_stack.base_url}/v1/models/hello")
    assert wrong.status_code == 405
    assert "DELETE /v1/models/hello: the method is not allowed" in wrong.json()["error"]["message"]


def test_the_root_answers_for_clients_that_probe_it(api_stack: RunningStack) -> None:
    assert httpx.head(api_stack.base_url + "/").status_code == 200
    root = httpx.get(api_stack.base_url + "/")
    assert root.status_code == 200 and "cortex" in root.text


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"frobnicate": 1}, "unknown field `frobnicate`"),
        ({"container": "c1"}, "'container' is not supported"),
        ({"speed": "fast"}, "'speed' is not supported"),
        ({"output_config": {"effort": "extreme"}}, "output_config.effort must be one of"),
    ],
)
def test_what_the_api_defines_but_cannot_run_here_is_refused_by_name(
    api_stack: RunningStack, extra: dict[str, Any], says: str
) -> None:
    body = {"model": "hello", "messages": HI, **extra}
    bodies = {"/v1/messages": {**body, "max_tokens": 8}}
    if not {"container", "speed"} & set(extra):  # fields of /v1/messages alone
        bodies["/v1/messages/count_tokens"] = body
    for path, sent in bodies.items():
        answer = httpx.post(api_stack.base_url + path, json=sent, timeout=30)
        assert answer.status_code == 400, (path, answer.text)
        assert says in answer.json()["error"]["message"]


def test_a_last_assistant_message_is_the_start_the_model_continues(
    claude: anthropic.Anthropic,
) -> None:
    """Anthropic's prefill: the prompt ends inside the reply, and the answer is only what
    follows (this model's chain goes on from "Hello" to ", world!")."""
    prefilled: list[Any] = [*HI, {"role": "assistant", "content": "Hello"}]
    message = claude.messages.create(model="hello", max_tokens=16, messages=prefilled)
    assert message.content[0].text == ", world!"  # type: ignore[union-attr]
    with claude.messages.stream(model="hello", max_tokens=16, messages=prefilled) as stream:
        assert stream.get_final_text() == ", world!"
    counted = claude.messages.count_tokens(model="hello", messages=prefilled)
    usage = message.usage
    assert counted.input_tokens == usage.input_tokens + (usage.cache_read_input_tokens or 0)


def test_taken_as_they_are(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="hello", max_tokens=8, messages=HI, metadata={"user_id": "u1"},
        service_tier="standard_only", inference_geo="here",
        extra_body={"cache_control": {"type": "ephemeral"},
                    "context_management": {"edits": [{"type": "clear_thinking_20251015",
                                                       "keep": "all"}]}},
    )  # fmt: skip
    assert message.content[0].text == "Hello, world!"  # type: ignore[union-attr]


# --- OpenAI tools, formats, parameters ------------------------------------------------

OPENAI_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": WEATHER_TOOL["input_schema"]},
}


def test_openai_tool_calls_stream_and_non_stream(gpt: openai.OpenAI) -> None:
    completion = gpt.chat.completions.create(model="tool", messages=HI, tools=[OPENAI_TOOL])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {
        "city": "Paris"
    }
    chunks = list(
        gpt.chat.completions.create(model="tool", messages=HI, tools=[OPENAI_TOOL], stream=True)
    )
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert [tc.function.name for tc in calls if tc.id] == ["get_weather"]  # then its arguments
    arguments = "".join(tc.function.arguments or "" for tc in calls if tc.function)
    assert json.loads(arguments) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_openai_tool_history_round_trip(gpt: openai.OpenAI) -> None:
    history = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
    ]  # fmt: skip
    with_history = gpt.chat.completions.create(model="hello", messages=history, tools=[OPENAI_TOOL])
    bare = gpt.chat.completions.create(model="hello", messages=history[:1])
    assert with_history.choices[0].message.content == "Hello, world!"
    assert with_history.usage is not None and bare.usage is not None
    assert with_history.usage.prompt_tokens > bare.usage.prompt_tokens + 20


def test_reasoning_off_closes_the_reasoning_of_a_model_that_reasons_anyway(
    gpt: openai.OpenAI, claude: anthropic.Anthropic, api_stack: RunningStack
) -> None:
    """The think model opens its reasoning whatever its template says: reasoning switched
    off in any dialect closes it at once, and the answer follows."""
    completion = gpt.chat.completions.create(model="think", messages=HI, reasoning_effort="none")
    assert completion.choices[0].message.content == "Hello!"
    assert (completion.choices[0].message.model_extra or {}).get("reasoning_content") is None
    message = claude.messages.create(
        model="think", max_tokens=32, messages=HI, thinking={"type": "disabled"}
    )
    assert [(b.type, getattr(b, "text", "")) for b in message.content] == [("text", "Hello!")]
    reply = ollama.Client(host=api_stack.base_url).chat(model="think", messages=HI, think=False)
    assert (reply.message.content, reply.message.thinking or "") == ("Hello!", "")


def test_json_schema_response_format_constrains_the_output(gpt: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    completion = gpt.chat.completions.create(
        model="hello", messages=HI, max_tokens=40,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )  # fmt: skip
    value = json.loads(completion.choices[0].message.content or "")
    assert isinstance(value["a"], int)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"functions": [OPENAI_TOOL["function"]]}, "functions"),
        ({"function_call": "auto"}, "function_call"),
    ],
)
def test_parameters_that_cannot_be_honoured_are_rejected(gpt: openai.OpenAI, extra, param) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gpt.chat.completions.create(model="hello", messages=HI, **extra)
    assert caught.value.body["param"] == param  # type: ignore[index]
    assert caught.value.code == "unsupported_parameter"


def hello_model(folder: Path) -> TinyModel:
    """The stack's "hello" model again (the same inputs build the same model)."""
    return build_tiny_gguf(
        folder / "hello.gguf", ("Hello", ",", " world", "!"), chat_template=TOOLS_TEMPLATE
    )


def hello_ids(folder: Path) -> dict[str, int]:
    """Token ids of the stack's "hello" model."""
    model = hello_model(folder)
    return dict(zip(model.reply, model.reply_ids, strict=True))


# --- several choices (n) -----------------------------------------------------------------


def test_n_choices_are_the_seeded_requests_one_by_one(gpt: openai.OpenAI, tmp_path: Path) -> None:
    """Biased to four equally likely tokens at every step, each seed draws its own text;
    choice i of a request seeded s is what a request seeded s+i draws."""
    ids = hello_ids(tmp_path)
    flat = {str(ids[t]): 20 for t in (",", " world", "!")}
    ask: dict[str, Any] = {"model": "hello", "messages": HI, "max_tokens": 6,
                           "temperature": 1, "logit_bias": flat}  # fmt: skip
    several = gpt.chat.completions.create(n=3, seed=11, **ask)
    singles = [gpt.chat.completions.create(seed=11 + i, **ask) for i in range(3)]
    texts = [c.message.content for c in several.choices]
    assert [c.index for c in several.choices] == [0, 1, 2]
    assert texts == [single.choices[0].message.content for single in singles]
    assert len(set(texts)) > 1
    used = [single.usage for single in singles if single.usage]
    assert several.usage is not None
    assert several.usage.completion_tokens == sum(u.completion_tokens for u in used)
    assert several.usage.prompt_tokens == used[0].prompt_tokens  # the prompt, once
    streamed = list(gpt.chat.completions.create(
        n=3, seed=11, stream=True, stream_options={"include_usage": True}, **ask
    ))  # fmt: skip
    by_index: dict[int, str] = {}
    for chunk in streamed:
        for choice in chunk.choices:
            by_index[choice.index] = by_index.get(choice.index, "") + (choice.delta.content or "")
    assert [by_index[i] for i in range(3)] == texts
    finishes = [c for chunk in streamed for c in chunk.choices if c.finish_reason]
    assert sorted(c.index for c in finishes) == [0, 1, 2]
    assert streamed[-1].usage is not None
    assert streamed[-1].usage.completion_tokens == several.usage.completion_tokens
    completions = gpt.completions.create(
        model="hello", prompt="Say it\n", n=2, seed=11, max_tokens=6, temperature=1,
        logit_bias=flat,
    )  # fmt: skip
    assert [c.text for c in completions.choices] == [
        gpt.completions.create(model="hello", prompt="Say it\n", seed=11 + i, max_tokens=6,
                               temperature=1, logit_bias=flat).choices[0].text
        for i in range(2)
    ]  # fmt: skip


def test_completions_answer_each_prompt_of_a_batch(gpt: openai.OpenAI, tmp_path: Path) -> None:
    """A list of prompts (lm-eval's batches, LangChain's batch) is answered prompt by
    prompt, as requests one by one would be: prompt i's n choices are choices i*n to
    i*n+n-1, and the usage counts every prompt once."""
    ids = hello_ids(tmp_path)
    batch = gpt.completions.create(
        model="hello", prompt=[[ids[","]], [ids[" world"]]], n=2, max_tokens=4
    )
    assert [(c.index, c.text) for c in batch.choices] == [
        (0, " world!"), (1, " world!"), (2, "!"), (3, "!"),
    ]  # fmt: skip
    singles = [
        gpt.completions.create(model="hello", prompt=[ids[token]], max_tokens=4).usage
        for token in (",", " world")
    ]
    assert batch.usage is not None and None not in singles
    assert batch.usage.prompt_tokens == sum(u.prompt_tokens for u in singles if u)
    assert batch.usage.completion_tokens == 2 * sum(u.completion_tokens for u in singles if u)
    asked = {"model": "hello", "prompt": ["Say it\n", "Say it"], "echo": True, "max_tokens": 8}
    whole = gpt.completions.create(**asked)
    assert [c.text for c in whole.choices] == ["Say it\nHello, world!", "Say it"]
    chunks = list(
        gpt.completions.create(**asked, stream=True, stream_options={"include_usage": True})
    )
    texts: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
    assert [texts[i] for i in range(2)] == [c.text for c in whole.choices]
    streamed, answered = chunks[-1].usage, whole.usage
    assert streamed is not None and answered is not None
    assert (streamed.prompt_tokens, streamed.completion_tokens) == (
        answered.prompt_tokens, answered.completion_tokens,
    )  # fmt: skip
    for bad, says in (
        (["Say it", []], "prompt[1] is empty"),
        (["Say it", 7], "prompt[1] is a number among prompts"),
        (["x"] * 33, "at most 64 answers per request"),
    ):
        with pytest.raises(openai.BadRequestError, match=re.escape(says)):
            gpt.completions.create(model="hello", prompt=bad, n=2, max_tokens=1)


def test_n_out_of_range_is_refused(gpt: openai.OpenAI) -> None:
    for n in (0, 17):
        with pytest.raises(openai.BadRequestError) as caught:
            gpt.chat.completions.create(model="hello", messages=HI, n=n)
        assert "n must be between 1 and 16" in caught.value.message


# --- log probabilities ----------------------------------------------------------------


def test_chat_logprobs_are_the_designed_distribution(gpt: openai.OpenAI, tmp_path: Path) -> None:
    """Each answer token is its predecessor's designed successor: its log probability and
    the alternatives' follow from the logit margin exactly, streamed or not."""
    chosen, other = hello_model(tmp_path).logprobs()
    whole = gpt.chat.completions.create(
        model="hello", messages=HI, logprobs=True, top_logprobs=3, temperature=0
    )
    scored = whole.choices[0].logprobs
    assert scored is not None and scored.content is not None
    assert [t.token for t in scored.content] == ["Hello", ",", " world", "!"]
    for token in scored.content:
        assert token.logprob == pytest.approx(chosen, abs=1e-4)
        assert token.bytes == list(token.token.encode())
        tops = token.top_logprobs
        assert [t.token for t in tops][:1] == [token.token] and len(tops) == 3
        assert [t.logprob for t in tops[1:]] == pytest.approx([other, other], abs=1e-4)
    # Sampling at a high temperature changes what is drawn, not the model's distribution.
    hot = gpt.chat.completions.create(
        model="hello", messages=HI, logprobs=True, temperature=2, seed=7, max_tokens=1
    )
    assert hot.choices[0].logprobs.content[0].logprob in (  # type: ignore[union-attr,index]
        pytest.approx(chosen, abs=1e-4), pytest.approx(other, abs=1e-4),
    )  # fmt: skip
    streamed = gpt.chat.completions.create(
        model="hello", messages=HI, logprobs=True, top_logprobs=3, stream=True
    )
    pieces = [t for c in streamed if c.choices and c.choices[0].logprobs
              for t in c.choices[0].logprobs.content or []]  # fmt: skip
    assert [t.model_dump() for t in pieces] == [t.model_dump() for t in scored.content]
    plain = gpt.chat.completions.create(model="hello", messages=HI)
    assert plain.choices[0].logprobs is None


def test_completions_echo_scores_the_prompt(gpt: openai.OpenAI, tmp_path: Path) -> None:
    """What evaluation harnesses score multiple choice by: the prompt echoed with every
    token's log probability (the first has none) and the chosen token among the top."""
    model = hello_model(tmp_path)
    chosen, other = model.logprobs()
    scored = gpt.completions.create(
        model="hello", prompt="Say it\n", echo=True, logprobs=1, max_tokens=1, temperature=0
    )
    choice = scored.choices[0]
    assert choice.text == "Say it\nHello"
    logprobs = choice.logprobs
    assert logprobs is not None and logprobs.tokens and logprobs.token_logprobs
    assert "".join(logprobs.tokens) == choice.text
    assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None  # type: ignore[index]
    # No prompt token is the designed successor of the one before it; "Hello" is of "\n".
    assert logprobs.token_logprobs[1:-1] == pytest.approx([other] * (len(logprobs.tokens) - 2))
    assert logprobs.token_logprobs[-1] == pytest.approx(chosen, abs=1e-4)
    assert logprobs.top_logprobs[-1] == {"Hello": pytest.approx(chosen, abs=1e-4)}  # type: ignore[index]
    starts = [sum(len(t) for t in logprobs.tokens[:i]) for i in range(len(logprobs.tokens))]
    assert logprobs.text_offset == starts
    # The prompt only (max_tokens 0), and the same prompt as the token ids it became.
    ids = httpx.post(
        f"{str(gpt.base_url).rstrip('/')}/completions",
        json={"model": "hello", "prompt": "Say it\n", "echo": True, "logprobs": 0,
              "max_tokens": 0},
        timeout=60,
    ).json()["choices"][0]["logprobs"]  # fmt: skip
    assert ids["tokens"] == logprobs.tokens[:-1]
    assert ids["token_logprobs"] == pytest.approx(logprobs.token_logprobs[:-1])


def test_completions_logprobs_streamed_and_the_end_token(
    gpt: openai.OpenAI, tmp_path: Path
) -> None:
    chosen, _ = hello_model(tmp_path).logprobs()
    whole = gpt.completions.create(model="hello", prompt="Say it\n", logprobs=2, max_tokens=8)
    logprobs = whole.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens is not None
    # The end token is listed (not written): "!" leads to it by design.
    assert logprobs.tokens == ["Hello", ",", " world", "!", "<|im_end|>"]
    assert logprobs.token_logprobs == pytest.approx([chosen] * 5, abs=1e-4)
    assert logprobs.text_offset[0] == len("Say it\n")  # type: ignore[index]
    assert all(len(top) == 2 for top in logprobs.top_logprobs or [])
    streamed = gpt.completions.create(
        model="hello", prompt="Say it\n", logprobs=2, max_tokens=8, stream=True
    )
    tokens: list[str] = []
    offsets: list[int] = []
    for chunk in streamed:
        if chunk.choices and chunk.choices[0].logprobs:
            tokens += chunk.choices[0].logprobs.tokens or []
            offsets += chunk.choices[0].logprobs.text_offset or []
    assert (tokens, offsets) == (logprobs.tokens, logprobs.text_offset)


def test_a_prompt_of_token_ids_is_used_as_given(gpt: openai.OpenAI, tmp_path: Path) -> None:
    """No BOS added, no template: the chain goes on from the token given."""
    ids = hello_ids(tmp_path)
    completion = gpt.completions.create(model="hello", prompt=[ids[","]], max_tokens=2)
    assert completion.choices[0].text == " world!"
    echoed = gpt.completions.create(model="hello", prompt=[[ids[","]]], echo=True, max_tokens=1)
    assert echoed.choices[0].text == ", world"
    with pytest.raises(openai.BadRequestError) as caught:
        gpt.completions.create(model="hello", prompt=[999999], max_tokens=1)
    assert "outside this model's vocabulary" in caught.value.message


def test_the_models_tokenizer_over_http(api_stack: RunningStack, tmp_path: Path) -> None:
    """vLLM's endpoints (and llama-server's field names): ids as the model tokenizes, back
    to the same text, and what the tokenizer is."""
    ids = hello_ids(tmp_path)
    base = api_stack.base_url

    def post(path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{base}{path}", json=body, timeout=60)

    tokens = post("/tokenize", {"model": "hello", "prompt": "Hello, world!<|im_end|>",
                                "add_special_tokens": False}).json()  # fmt: skip
    assert tokens["tokens"][:4] == [ids["Hello"], ids[","], ids[" world"], ids["!"]]
    assert len(tokens["tokens"]) == 5 and tokens["count"] == 5  # the special text is one token
    assert tokens["max_model_len"] == 512
    # llama-server's field names; a BOS, when asked, is the model's own.
    same = post("/tokenize", {"model": "hello", "content": "Hello, world!<|im_end|>"}).json()
    assert same["tokens"] == tokens["tokens"]
    text = post("/detokenize", {"model": "hello", "tokens": tokens["tokens"]}).json()
    assert text["prompt"] == text["content"] == "Hello, world!<|im_end|>"
    info = httpx.get(f"{base}/tokenizer_info", params={"model": "hello"}, timeout=60).json()
    assert info["eos_token"] == "<|im_end|>" and info["bos_token"] == "<|im_start|>"
    assert "{% for message in messages %}" in info["chat_template"]
    # Naming no model works only where the fleet serves one; this stack serves several.
    unnamed = post("/tokenize", {"prompt": "x"})
    assert unnamed.status_code == 400 and "name the model" in unnamed.json()["error"]["message"]
    bad = post("/detokenize", {"model": "hello", "tokens": [10**7]})
    assert bad.status_code == 400 and "outside this model's vocabulary" in bad.text
    missing = post("/tokenize", {"model": "hello"})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "prompt"


# --- stored responses -----------------------------------------------------------------


def test_a_stored_response_is_continued_through_another_gateway(
    gpt: openai.OpenAI, api_stack: RunningStack
) -> None:
    """Responses live on the bus: a second replica returns one the first answered,
    continues its conversation, and deletes it for both."""
    first = gpt.responses.create(model="hello", input="Hi", instructions="Be brief.")
    assert first.output_text == "Hello, world!"
    with running_gateway(api_stack.settings) as other_url:
        other = openai.OpenAI(base_url=f"{other_url}/v1", api_key="unused", max_retries=0)
        again = other.responses.retrieve(first.id)
        assert (again.id, again.output_text) == (first.id, "Hello, world!")
        follow = other.responses.create(
            model="hello", input="Again", previous_response_id=first.id, instructions="Be brief."
        )
        assert follow.previous_response_id == first.id
        # The model saw the stored conversation: exactly what sending it all would give.
        whole = gpt.responses.create(
            model="hello", instructions="Be brief.",
            input=[{"role": "user", "content": "Hi"},
                   {"role": "assistant", "content": "Hello, world!"},
                   {"role": "user", "content": "Again"}],
        )  # fmt: skip
        assert follow.usage is not None and whole.usage is not None
        assert follow.usage.input_tokens == whole.usage.input_tokens
        # Its input, as the API lists input items (newest first by default).
        items = other.responses.input_items.list(follow.id)
        assert [(i.type, i.role) for i in items.data] == [("message", "user")]  # type: ignore[union-attr]
        assert items.data[0].content[0].text == "Again"  # type: ignore[union-attr]
        oldest_first = gpt.responses.input_items.list(whole.id, order="asc").data
        texts = [i.content[0].text for i in oldest_first]  # type: ignore[union-attr]
        assert texts == ["Hi", "Hello, world!", "Again"]
        # Streamed: stored before the stream says it is done.
        streamed = gpt.responses.create(model="hello", input="Hi", stream=True)
        done = next(e for e in streamed if e.type == "response.completed").response
        assert other.responses.retrieve(done.id).output_text == "Hello, world!"
        deleted = other.responses.delete(first.id)
        assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        gpt.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError) as caught:
        gpt.responses.create(model="hello", input="x", previous_response_id=first.id)
    assert caught.value.body["param"] == "previous_response_id"  # type: ignore[index]
    unstored = gpt.responses.create(model="hello", input="Hi", store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        gpt.responses.retrieve(unstored.id)


def test_responses_include_output_text_logprobs(gpt: openai.OpenAI, tmp_path: Path) -> None:
    chosen, _ = hello_model(tmp_path).logprobs()
    response = gpt.responses.create(
        model="hello", input="Hi", include=["message.output_text.logprobs"], top_logprobs=2
    )
    text = response.output[0].content[0]  # type: ignore[union-attr]
    assert [t.token for t in text.logprobs] == ["Hello", ",", " world", "!"]  # type: ignore[union-attr]
    assert all(t.logprob == pytest.approx(chosen, abs=1e-4) for t in text.logprobs)  # type: ignore[union-attr]
    assert all(len(t.top_logprobs) == 2 for t in text.logprobs)  # type: ignore[union-attr]
    deltas = [
        token.token
        for event in gpt.responses.create(
            model="hello", input="Hi", include=["message.output_text.logprobs"], stream=True
        )
        if event.type == "response.output_text.delta"
        for token in event.logprobs
    ]
    assert deltas == ["Hello", ",", " world", "!"]
    plain = gpt.responses.create(model="hello", input="Hi")
    assert plain.output[0].content[0].logprobs == []  # type: ignore[union-attr]


def test_ollama_logprobs_for_chat_and_generate(api_stack: RunningStack, tmp_path: Path) -> None:
    chosen, other = hello_model(tmp_path).logprobs()
    client = ollama.Client(host=api_stack.base_url)
    chat = client.chat(model="hello", messages=HI, logprobs=True, top_logprobs=2)
    assert [t.token for t in chat.logprobs or []] == ["Hello", ",", " world", "!"]
    assert all(t.logprob == pytest.approx(chosen, abs=1e-4) for t in chat.logprobs or [])
    assert all(
        [a.logprob for a in t.top_logprobs or []] == pytest.approx([chosen, other], abs=1e-4)
        for t in chat.logprobs or []
    )
    streamed = [
        t.token
        for part in client.generate(model="hello", prompt="Hi", logprobs=True, stream=True)
        for t in part.logprobs or []
    ]
    assert streamed == ["Hello", ",", " world", "!"]
    assert client.chat(model="hello", messages=HI).logprobs is None


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs must be between 0 and 20"),
        ({"top_logprobs": 2}, "top_logprobs needs logprobs set to true"),
    ],
)
def test_bad_logprobs_requests_are_refused(gpt: openai.OpenAI, extra, says) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gpt.chat.completions.create(model="hello", messages=HI, **extra)
    assert says in caught.value.message


def test_logit_bias_forces_and_bans_tokens(gpt: openai.OpenAI, tmp_path: Path) -> None:
    ids = hello_ids(tmp_path)
    plain = gpt.chat.completions.create(model="hello", messages=HI)
    assert plain.choices[0].message.content == "Hello, world!"
    forced = gpt.chat.completions.create(
        model="hello", messages=HI, max_tokens=3, logit_bias={str(ids["!"]): 100}
    )
    assert forced.choices[0].message.content == "!!!"
    streamed = gpt.chat.completions.create(
        model="hello", messages=HI, max_tokens=3, logit_bias={str(ids["!"]): 100}, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "!!!"
    banned = gpt.chat.completions.create(
        model="hello", messages=HI, max_tokens=3, logit_bias={str(ids["Hello"]): -100}
    )
    assert not (banned.choices[0].message.content or "").startswith("Hello")
    completion = gpt.completions.create(
        model="hello", prompt="Say it\n", max_tokens=2, logit_bias={str(ids[" world"]): 100}
    )
    assert completion.choices[0].text == " world world"


@pytest.mark.parametrize(
    ("bias", "says"),
    [
        ({"x": 1}, "logit_bias keys must be token ids"),
        ({"5": 150}, "must be between -100 and 100"),
        ({"999999": 5}, "outside this model's vocabulary"),
    ],
)
def test_a_bad_logit_bias_is_refused_with_the_reason(gpt: openai.OpenAI, bias, says) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gpt.chat.completions.create(model="hello", messages=HI, logit_bias=bias)
    assert says in caught.value.message


def test_a_suffix_fills_in_the_middle_with_the_models_fim_tokens(
    gpt: openai.OpenAI, api_stack: RunningStack
) -> None:
    """The chain starts at the model's FIM middle token: only a prompt written as
    PRE prefix SUF suffix MID gets the designed answer."""
    middle = gpt.completions.create(
        model="fim", prompt="def f(x):\n    ", suffix="\n", max_tokens=8, temperature=0
    )
    assert middle.choices[0].text == "return x"
    assert middle.usage is not None and middle.usage.prompt_tokens > 3
    streamed = gpt.completions.create(
        model="fim", prompt="def f(x):\n    ", suffix="\n", max_tokens=8, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == "return x"
    plain = gpt.completions.create(model="fim", prompt="def f(x):\n    ", max_tokens=8)
    assert plain.choices[0].text != "return x"
    ollama = httpx.post(
        f"{api_stack.base_url}/api/generate",
        json={"model": "fim", "prompt": "def f(x):\n", "suffix": "\n", "stream": False},
        timeout=60,
    )
    assert ollama.status_code == 200, ollama.text
    assert ollama.json()["response"] == "return x"


def test_a_suffix_for_a_model_without_fim_tokens_is_refused(gpt: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gpt.completions.create(model="hello", prompt="def f(", suffix=")")
    assert "no fill-in-the-middle tokens" in caught.value.message


# --- OpenAI completions ------------------------------------------------------------------


def test_completions_stream_and_non_stream(gpt: openai.OpenAI) -> None:
    completion = gpt.completions.create(model="hello", prompt="Say it\n")
    assert completion.object == "text_completion"
    assert (
        completion.choices[0].text == "Hello, world!"
        and completion.choices[0].finish_reason == "stop"
    )
    assert completion.usage is not None and completion.usage.completion_tokens == 4
    chunks = list(
        gpt.completions.create(
            model="hello", prompt="Say it\n", stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Hello, world!"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    cut = gpt.completions.create(model="hello", prompt="Say it\n", max_tokens=1)
    assert (cut.choices[0].text, cut.choices[0].finish_reason) == ("Hello", "length")


def test_completions_hide_reasoning_unless_asked_inline(gpt: openai.OpenAI) -> None:
    plain = gpt.completions.create(model="think", prompt="Q\n", max_tokens=20)
    assert plain.choices[0].text == "Hello!"
    inline = gpt.completions.create(
        model="think", prompt="Q\n", max_tokens=20, extra_headers={"x-include-thinking": "yes"}
    )
    assert inline.choices[0].text == "<think>Let me think</think>Hello!"


def test_completions_reject_what_they_cannot_do(gpt: openai.OpenAI) -> None:
    for extra, param in (
        ({"best_of": 3}, "best_of"),
        ({"logprobs": 21}, "logprobs"),
        ({"max_tokens": 0}, "max_tokens"),  # 0 only with echo: nothing to return otherwise
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            gpt.completions.create(model="hello", prompt="x", **extra)
        assert caught.value.body["param"] == param  # type: ignore[index]


def test_a_prompt_with_no_tokens_is_a_400_on_every_route(
    gpt: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    """An empty prompt is one OpenAI takes (a model with a BOS token starts from it); these models
    have none, so it is no tokens at all, which nothing can be predicted from: a 400, at
    once, streamed or not — never a wait for a first token that cannot come."""
    quick = gpt.with_options(timeout=60)
    says = "the prompt has no tokens"
    with pytest.raises(openai.BadRequestError, match=says):
        quick.completions.create(model="hello", prompt="")
    with pytest.raises(openai.BadRequestError, match=says):
        for _ in quick.completions.create(model="hello", prompt="", stream=True):
            pass
    # A chat whose template renders nothing for an empty message.
    empty: list[Any] = [{"role": "user", "content": ""}]
    with pytest.raises(openai.BadRequestError, match=says):
        for _ in quick.chat.completions.create(model="bare", messages=empty, stream=True):
            pass
    with pytest.raises(anthropic.BadRequestError, match=says):
        claude.with_options(timeout=60).messages.create(
            model="bare", max_tokens=8, messages=[{"role": "assistant", "content": ""}]
        )
    answered = quick.chat.completions.create(model="bare", messages=HI, max_tokens=4)
    assert answered.choices[0].finish_reason in ("stop", "length")  # the model still serves


BAD_SCHEMA = {"type": "nonsense"}


def test_what_the_sampler_would_refuse_is_a_400_before_the_stream(gpt: openai.OpenAI) -> None:
    """A schema with no grammar, a bias outside the vocabulary: the neuron refuses them
    before it accepts the request, so a stream gets the same 400 as a whole answer."""
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "x", "schema": BAD_SCHEMA}}
    for stream in (False, True):
        # the converter's words, not its exception's class
        with pytest.raises(openai.BadRequestError, match="decoding: Unrecognized schema"):
            answer = gpt.chat.completions.create(
                model="hello", messages=HI, response_format=fmt, stream=stream
            )
            for _ in answer if stream else ():
                pass
        with pytest.raises(openai.BadRequestError, match="outside this model's vocabulary"):
            answer = gpt.chat.completions.create(
                model="hello", messages=HI, logit_bias={"999999999": 5}, stream=stream
            )
            for _ in answer if stream else ():
                pass
        text: Any = {"format": {"type": "json_schema", "name": "x", "schema": BAD_SCHEMA}}
        with pytest.raises(openai.BadRequestError, match="cannot be used for decoding"):
            response = gpt.responses.create(model="hello", input="Hi", text=text, stream=stream)
            for _ in response if stream else ():
                pass


def test_empty_content_lists_are_refused_as_the_apis_do(
    gpt: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    for model in ("hello", "strict"):
        with pytest.raises(anthropic.BadRequestError, match="non-empty content") as caught:
            claude.messages.create(
                model=model, max_tokens=8, messages=[{"role": "user", "content": []}]
            )
        assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        with pytest.raises(openai.BadRequestError) as refused:
            gpt.chat.completions.create(model=model, messages=[{"role": "user", "content": []}])
        assert refused.value.body["param"] == "messages[0].content"  # type: ignore[index]
    # An empty string is a message OpenAI takes (the template renders its turn).
    said = gpt.chat.completions.create(model="hello", messages=[{"role": "user", "content": ""}])
    assert said.choices[0].message.content == "Hello, world!"


def test_an_unknown_tool_choice_type_is_refused_by_name(
    claude: anthropic.Anthropic, api_stack: RunningStack
) -> None:
    with pytest.raises(anthropic.BadRequestError, match=r"tool_choice\.type must be one of"):
        claude.messages.create(
            model="hello", max_tokens=8, messages=HI, tools=[WEATHER_TOOL],  # type: ignore[list-item]
            tool_choice={"type": "bogus"},  # type: ignore[arg-type,misc]
        )  # fmt: skip
    counted = httpx.post(
        f"{api_stack.base_url}/v1/messages/count_tokens",
        json={"model": "hello", "messages": HI, "tool_choice": {"type": "bogus"}}, timeout=30,
    )  # fmt: skip
    assert counted.status_code == 400 and "tool_choice.type" in counted.text


def test_count_tokens_takes_the_fields_the_sdk_sends(claude: anthropic.Anthropic) -> None:
    plain = claude.messages.count_tokens(model="hello", messages=HI)
    counted = claude.messages.count_tokens(
        model="hello", messages=HI, cache_control={"type": "ephemeral"}, speed="standard",
        extra_body={"user_profile_id": "u1", "workspace_id": "w1"},
    )  # fmt: skip
    assert counted.input_tokens == plain.input_tokens


def test_a_body_of_the_wrong_shape_names_the_field(api_stack: RunningStack) -> None:
    """Valid JSON that does not fit is "invalid request", naming the field msgspec found
    (param, in OpenAI's envelope); only malformed JSON is "not valid JSON"."""
    base = api_stack.base_url
    cases: list[tuple[str, dict[str, Any], str | None]] = [
        ("/v1/chat/completions", {"messages": HI}, "model"),
        ("/v1/chat/completions", {"model": "hello", "messages": [{"content": "x"}]},
         "messages[0].role"),
        ("/v1/completions", {"model": "hello", "prompt": 5}, "prompt"),
        ("/v1/responses", {"model": "hello"}, "input"),
    ]  # fmt: skip
    for path, body, param in cases:
        error = httpx.post(base + path, json=body, timeout=30).json()["error"]
        assert error["message"].startswith("invalid request: "), (path, error)
        assert error["param"] == param, (path, error)
    malformed = httpx.post(
        base + "/v1/chat/completions", content=b'{"model": ', timeout=30,
        headers={"content-type": "application/json"},
    ).json()["error"]  # fmt: skip
    assert malformed["message"].startswith("request body is not valid JSON")
    anthropic_error = httpx.post(
        base + "/v1/messages", json={"max_tokens": 8, "messages": HI}, timeout=30
    ).json()["error"]
    assert anthropic_error["message"] == "invalid request: Object missing required field `model`"


# --- OpenAI responses --------------------------------------------------------------------

RESPONSES_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": WEATHER_TOOL["input_schema"],
}


def test_responses_text_and_reasoning_items(gpt: openai.OpenAI) -> None:
    response = gpt.responses.create(model="hello", input="Hi", instructions="Be brief.")
    assert response.status == "completed"
    assert response.output_text == "Hello, world!"
    assert [item.type for item in response.output] == ["message"]
    assert response.usage is not None and response.usage.output_tokens == 4

    thinking = gpt.responses.create(model="think", input=[{"role": "user", "content": "Hi"}])
    assert [item.type for item in thinking.output] == ["reasoning", "message"]
    assert thinking.output[0].content[0].text == "Let me think"  # type: ignore[union-attr,index]
    assert thinking.output_text == "Hello!"
    assert thinking.usage is not None and thinking.usage.output_tokens_details.reasoning_tokens > 0


def test_responses_stream_events_are_numbered_and_ordered(gpt: openai.OpenAI) -> None:
    events = list(gpt.responses.create(model="think", input="Hi", stream=True))
    kinds = [e.type for e in events]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    first_reasoning = kinds.index("response.reasoning_text.delta")
    first_text = kinds.index("response.output_text.delta")
    assert first_reasoning < first_text
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Hello!"
    assert events[-1].response.output_text == "Hello!"


def test_responses_function_calls_and_outputs(gpt: openai.OpenAI) -> None:
    response = gpt.responses.create(model="tool", input="Weather?", tools=[RESPONSES_TOOL])
    (call,) = response.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    streamed = list(
        gpt.responses.create(model="tool", input="Weather?", tools=[RESPONSES_TOOL], stream=True)
    )
    done = [e for e in streamed if e.type == "response.function_call_arguments.done"]
    assert [json.loads(e.arguments) for e in done] == [{"city": "Paris"}]
    follow_up = [
        {"role": "user", "content": "Weather?"},
        {
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments,
        },
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"},
    ]
    answered = gpt.responses.create(model="hello", input=follow_up, tools=[RESPONSES_TOOL])
    assert answered.output_text == "Hello, world!"


def test_responses_max_output_tokens_is_incomplete(gpt: openai.OpenAI) -> None:
    response = gpt.responses.create(model="hello", input="Hi", max_output_tokens=2)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert [item.status for item in response.output] == ["incomplete"]  # type: ignore[union-attr]
    events = list(gpt.responses.create(model="hello", input="Hi", max_output_tokens=2, stream=True))
    done = [e.item.status for e in events if e.type == "response.output_item.done"]
    assert done == ["incomplete"] and events[-1].type == "response.incomplete"
    assert [i.status for i in events[-1].response.output] == ["incomplete"]  # type: ignore[union-attr]
    whole = gpt.responses.create(model="think", input="Hi")  # not cut: every item completed
    assert [item.status for item in whole.output] == ["completed", "completed"]  # type: ignore[union-attr]
    with pytest.raises(openai.NotFoundError, match="no stored response 'resp_1'"):
        gpt.responses.create(model="hello", input="Hi", previous_response_id="resp_1")


def test_more_answers_than_the_model_ever_takes_at_once_is_a_400_not_a_429(
    gpt: openai.OpenAI,
) -> None:
    """A 429 would come back however often the request is sent (lm-eval retries them)."""
    with pytest.raises(openai.BadRequestError, match="takes at most 2 at a time"):
        gpt.completions.create(model="narrow", prompt=["a", "b", "c"], max_tokens=2)
    with pytest.raises(openai.BadRequestError, match="takes at most 2 at a time"):
        gpt.chat.completions.create(model="narrow", messages=HI, n=3, max_tokens=2)
    two = gpt.completions.create(model="narrow", prompt=["a", "b"], max_tokens=2)
    assert len(two.choices) == 2


def test_responses_truncation_auto_drops_the_oldest_turns_until_the_input_fits(
    gpt: openai.OpenAI,
) -> None:
    long = " ".join(["word"] * 700)  # more than the model's 512-token context
    conversation = [
        {"role": "user", "content": long}, {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "Say hello"},
    ]  # fmt: skip
    with pytest.raises(openai.BadRequestError, match="prompt is too long"):
        gpt.responses.create(model="hello", input=conversation, store=False)  # type: ignore[arg-type]
    done = gpt.responses.create(
        model="hello",
        input=conversation,
        truncation="auto",
        store=False,  # type: ignore[arg-type]
    )
    assert done.output_text == "Hello, world!"
    assert done.usage is not None and done.usage.input_tokens < 512
    with pytest.raises(openai.BadRequestError, match="prompt is too long"):  # nothing to drop
        gpt.responses.create(model="hello", input=long, truncation="auto", store=False)
