"""Every model family end to end: tiny GGUFs carrying each family's real chat template and
special tokens, served by a real neuron on llama.cpp, asked through the official openai and
anthropic SDKs, streamed and not. The answer, the reasoning and the tool call come apart
exactly as each family's model wrote them; no family name steers cortex's code.

A family here is a template (tests/fixtures/chat_templates), the marker tokens its
vocabulary has (CONTROL tokens, as the real GGUFs ship them), the prompt's last token, and
two designed replies: one that reasons and answers, one that calls a tool. Harmony (gpt-oss)
is one of them: its channels come apart into reasoning, answer and call too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anthropic
import openai
import pytest

from tests.conftest import write_catalogue
from tests.support.stack import RunningStack, running_stack, stack_settings
from tests.support.templates import template
from tests.support.tiny_gguf import IM_END, IM_START, build_tiny_gguf

THOUGHT, ANSWER = "Ponder", "Paris"
CITY = {"city": "Paris"}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
ANTHROPIC_TOOLS = [
    {"name": "get_weather", "description": "The weather in a city",
     "input_schema": TOOLS[0]["function"]["parameters"]}
]  # fmt: skip
USER = [{"role": "user", "content": "Weather in Paris?"}]


@dataclass(frozen=True)
class Family:
    template: str
    specials: tuple[str, ...]
    start: str  # the prompt's last token
    answer: tuple[str, ...] | None  # a reply that reasons (THOUGHT) and answers (ANSWER)
    call: tuple[str, ...]  # a reply that calls get_weather(city="Paris")
    thinks: bool = True  # the answer reply reasons
    call_start: str = ""  # the prompt's last token for the tool reply, if different
    thinking: bool | None = None  # the switch the answer reply needs (None: default)


FAMILIES = {
    "hermes": Family(
        "Qwen-Qwen3-0.6B.jinja", ("<think>", "</think>", "<tool_call>", "</tool_call>"), "\n",
        ("<think>", THOUGHT, "</think>", ANSWER),
        ("<tool_call>", '{"name": "get_weather", "arguments": {"city": "Paris"}}', "</tool_call>"),
    ),
    "xml-function": Family(
        "Qwen3-Coder.jinja", ("<tool_call>", "</tool_call>"), "\n", (ANSWER,),
        ("<tool_call>", "\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n", "</tool_call>"),
        thinks=False,
    ),
    "arg-key-value": Family(
        "GLM-4.6.jinja",
        ("<|system|>", "<|user|>", "<|assistant|>", "<|observation|>", "<think>", "</think>",
         "<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>"),
        "<|assistant|>", ("<think>", THOUGHT, "</think>", ANSWER),
        ("<tool_call>", "get_weather", "<arg_key>", "city", "</arg_key>", "<arg_value>", "Paris", "</arg_value>", "</tool_call>"),
    ),
    "invoke": Family(
        "MiniMax-M2.jinja", ("<think>", "</think>", "<minimax:tool_call>", "</minimax:tool_call>", "]~b]", "[e~["),
        "\n", (THOUGHT, "</think>", ANSWER),
        ("</think>", "<minimax:tool_call>", '\n<invoke name="get_weather">\n<parameter name="city">Paris</parameter>\n</invoke>\n', "</minimax:tool_call>"),
    ),
    "seed": Family(
        "ByteDance-Seed-OSS.jinja",
        ("<seed:bos>", "<seed:eos>", "<seed:think>", "</seed:think>", "<seed:tool_call>", "</seed:tool_call>"),
        "\n", ("<seed:think>", THOUGHT, "</seed:think>", ANSWER),
        ("<seed:tool_call>", "\n<function=get_weather>\n<parameter=city>Paris</parameter>\n</function>\n", "</seed:tool_call>"),
    ),
    "sentinels": Family(
        "deepseek-ai-DeepSeek-V3.1.jinja",
        ("<｜User｜>", "<｜Assistant｜>", "<think>", "</think>", "<｜tool▁calls▁begin｜>",
         "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"),
        # Thinking on, the prompt ends with <think>; off (the default), with </think>.
        "<think>", (THOUGHT, "</think>", ANSWER),
        ("<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>", "get_weather", "<｜tool▁sep｜>", '{"city": "Paris"}', "<｜tool▁call▁end｜>", "<｜tool▁calls▁end｜>"),
        call_start="</think>", thinking=True,
    ),
    "attribute-typed-args": Family(
        "deepseek-ai-DeepSeek-V3.2.jinja",
        ("<｜User｜>", "<｜Assistant｜>", "<think>", "</think>"),
        # Thinking on, the prompt ends with <think>; off (the default), with </think>.
        "<think>", (THOUGHT, "</think>", ANSWER),
        ("<｜DSML｜function_calls>", '\n<｜DSML｜invoke name="get_weather">\n<｜DSML｜parameter name="city" string="true">',
         "Paris", "</｜DSML｜parameter>\n</｜DSML｜invoke>\n", "</｜DSML｜function_calls>"),
        call_start="</think>", thinking=True,
    ),
    "indexed-ids": Family(
        "moonshotai-Kimi-K2.jinja",
        ("<|im_user|>", "<|im_assistant|>", "<|im_system|>", "<|im_middle|>",
         "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>", "<|tool_call_begin|>",
         "<|tool_call_argument_begin|>", "<|tool_call_end|>"),
        "<|im_middle|>", (ANSWER,),
        ("<|tool_calls_section_begin|>", "<|tool_call_begin|>", "functions.get_weather:0", "<|tool_call_argument_begin|>", '{"city": "Paris"}', "<|tool_call_end|>", "<|tool_calls_section_end|>"),
        thinks=False,
    ),
    "bracket-args": Family(
        "unsloth-mistral-Devstral-Small-2507.jinja",
        ("[INST]", "[/INST]", "[TOOL_CALLS]", "[ARGS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
         "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]"),
        "[/INST]", (ANSWER,), ("[TOOL_CALLS]", "get_weather", "[ARGS]", '{"city": "Paris"}'),
        thinks=False,
    ),
    "bracket-array": Family(
        "mistralai-Mistral-Nemo-Instruct-2407.jinja",
        ("[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
         "[TOOL_RESULTS]", "[/TOOL_RESULTS]"),
        "[/INST]", (ANSWER,), ("[TOOL_CALLS]", '[{"name": "get_weather", "arguments": {"city": "Paris"}}]'),
        thinks=False,
    ),
    "bracket-think": Family(
        "mistralai-Ministral-3-14B-Reasoning-2512.jinja",
        ("[INST]", "[/INST]", "[THINK]", "[/THINK]", "[TOOL_CALLS]", "[ARGS]",
         "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"),
        "[/INST]", ("[THINK]", THOUGHT, "[/THINK]", ANSWER),
        ("[TOOL_CALLS]", "get_weather", "[ARGS]", '{"city": "Paris"}'),
    ),
    "bare-json": Family(
        "meta-llama-Llama-3.1-8B-Instruct.jinja",
        ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
         "<|eom_id|>", "<|python_tag|>"),
        "\n", (ANSWER,), ("<|python_tag|>", '{"name": "get_weather", "parameters": {"city": "Paris"}}'),
        thinks=False,
    ),
    "action-list": Family(
        "CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja",
        ("<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>",
         "<|SYSTEM_TOKEN|>", "<|START_THINKING|>", "<|END_THINKING|>", "<|START_RESPONSE|>",
         "<|END_RESPONSE|>", "<|START_ACTION|>", "<|END_ACTION|>"),
        # Thinking on, the prompt ends with the turn header; off, with an empty reasoning.
        "<|CHATBOT_TOKEN|>",
        ("<|START_THINKING|>", THOUGHT, "<|END_THINKING|>", "<|START_RESPONSE|>", ANSWER, "<|END_RESPONSE|>"),
        ("<|START_ACTION|>", '[{"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"city": "Paris"}}]', "<|END_ACTION|>"),
        call_start="<|END_THINKING|>", thinking=True,
    ),
    "action-list-forced-open": Family(
        "Cohere2MoE.jinja",
        ("<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>",
         "<|SYSTEM_TOKEN|>", "<|START_THINKING|>", "<|END_THINKING|>", "<|START_TEXT|>",
         "<|END_TEXT|>", "<|START_ACTION|>", "<|END_ACTION|>", "<|START_TOOL_RESULT|>",
         "<|END_TOOL_RESULT|>"),
        # Its switch defaults to on: the prompt ends inside the reasoning.
        "<|START_THINKING|>",
        (THOUGHT, "<|END_THINKING|>", "<|START_TEXT|>", ANSWER, "<|END_TEXT|>"),
        ("plan", "<|END_THINKING|>", "<|START_ACTION|>",
         '[{"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"city": "Paris"}}]',
         "<|END_ACTION|>"),
    ),
    "toolcall-list": Family(
        "NVIDIA-Nemotron-Nano-v2.jinja",
        ("<SPECIAL_10>", "<SPECIAL_11>", "<SPECIAL_12>", "<think>", "</think>", "<TOOLCALL>", "</TOOLCALL>"),
        "\n", (THOUGHT, "</think>", ANSWER),
        ("</think>", "<TOOLCALL>", '[{"name": "get_weather", "arguments": {"city": "Paris"}}]', "</TOOLCALL>"),
    ),
    "tool-calls-tag": Family(
        "unsloth-Apriel-1.5.jinja", ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<tool_calls>", "</tool_calls>"),
        "\n", (ANSWER,), ("<tool_calls>", '[{"name": "get_weather", "arguments": {"city": "Paris"}}]', "</tool_calls>"),
        thinks=False,
    ),
    "role-tags": Family(
        "ibm-granite-granite-4.0.jinja",
        ("<|start_of_role|>", "<|end_of_role|>", "<|end_of_text|>", "<tool_call>", "</tool_call>"),
        "<|end_of_role|>", (ANSWER,),
        ("<tool_call>", '{"name": "get_weather", "arguments": {"city": "Paris"}}', "</tool_call>"),
        thinks=False,
    ),
    "id-before-name": Family(
        "upstage-Solar-Open-100B.jinja",
        ("<|begin|>", "<|end|>", "<|content|>", "<|think|>", "<|flush|>", "<|tool_calls|>",
         "<|calls|>", "<|tool_call:begin|>", "<|tool_call:name|>", "<|tool_call:args|>",
         "<|tool_call:end|>"),
        # After its reasoning the model opens a new header, as the template writes it.
        "assistant", ("<|think|>", THOUGHT, "<|end|>", "<|begin|>", "assist", "ant", "<|content|>", ANSWER),
        ("<|tool_calls|>", "<|tool_call:begin|>", "x7Yq2", "<|tool_call:name|>", "get_weather",
         "<|tool_call:args|>", '{"city": "Paris"}', "<|tool_call:end|>", "<|calls|>"),
    ),
    "python-calls": Family(
        "LFM2.5-8B-A1B.jinja", ("<think>", "</think>", "<|tool_call_start|>", "<|tool_call_end|>"),
        "\n", ("<think>", THOUGHT, "</think>", ANSWER),
        ("<|tool_call_start|>", "[get_weather(city='Paris')]", "<|tool_call_end|>"),
    ),
    "name-as-key": Family(
        "Apertus-8B-Instruct.jinja",
        ("<|system_start|>", "<|system_end|>", "<|developer_start|>", "<|developer_end|>",
         "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>",
         "<|tools_prefix|>", "<|tools_suffix|>"),
        "<|assistant_start|>", (ANSWER,),
        ("<|tools_prefix|>", '[{"get_weather": {"city": "Paris"}}]', "<|tools_suffix|>"),
        thinks=False,
    ),
    "quoted-strings": Family(
        "google-gemma-4-31B-it.jinja",
        ("<|turn>", "<turn|>", "<|channel>", "<channel|>", "<|think|>", "<|tool>", "<tool|>",
         "<|tool_call>", "<tool_call|>", "<|tool_response>", "<tool_response|>", '<|"|>'),
        # Thinking on, the prompt ends with the model's turn; off, with an empty thought.
        "\n", ("<|channel>", "thought", THOUGHT, "<channel|>", ANSWER),
        ("<|tool_call>", "call:get_weather", "{city:", '<|"|>', "Paris", '<|"|>', "}", "<tool_call|>"),
        call_start="<channel|>", thinking=True,
    ),
    # A channel grammar. "assistant" ends the prompt, so the reply writes it in two tokens;
    # a marker written twice is spelled anew the second time (see tiny_gguf).
    "channels": Family(
        "openai-gpt-oss-120b.jinja",
        ("<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>", "<|return|>", "<|call|>"),
        "assistant",
        ("<|channel|>", "analysis", "<|message|>", THOUGHT, "<|end|>", "<|start|>", "assist", "ant",
         "<|channel|>", "final", "<|message|>", ANSWER, "<|return|>"),
        ("<|channel|>", "commentary", " to=functions.get_weather", " ", "<|constrain|>", "json",
         "<|message|>", '{"city": "Paris"}', "<|call|>"),
    ),
}  # fmt: skip


def in_pieces(reply: tuple[str, ...]) -> tuple[str, ...]:
    """The call's argument value written in two tokens ("Par", "is"): the neuron streams
    arguments as they grow (how many frames they take depends on timing; the parser's own
    tests pin the pieces down)."""
    out: list[str] = []
    for token in reply:
        if "Paris" in token:
            head, tail = token.split("Paris", 1)
            out += [head + "Par", "is" + tail]
        else:
            out.append(token)
    return tuple(out)


@pytest.fixture(scope="module")
def family_stack(nats_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    folder: Path = tmp_path_factory.mktemp("families")
    models: list[dict[str, object]] = []
    for name, family in FAMILIES.items():
        specials = (IM_START, IM_END, *family.specials)
        replies = {
            "answer": (family.answer, family.start),
            "call": (in_pieces(family.call), family.call_start or family.start),
        }
        for kind, (reply, start) in replies.items():
            assert reply is not None
            built = build_tiny_gguf(
                folder / f"{name}-{kind}.gguf", reply, specials=specials,
                chat_template=template(family.template), start=start, n_ctx=8192,
            )  # fmt: skip
            models.append({"id": f"{name}-{kind}", "path": str(built.path), "n_ctx": 8192})
    catalogue = write_catalogue(folder / "models.toml", models)
    settings = stack_settings(nats_server.url, catalogue, node="families-neuron")
    with running_stack(settings) as stack:
        yield stack


@pytest.fixture
def oai(family_stack: RunningStack) -> openai.OpenAI:
    return family_stack.openai()


@pytest.fixture
def claude(family_stack: RunningStack) -> anthropic.Anthropic:
    return family_stack.anthropic()


def switch(family: Family) -> dict[str, object]:
    return {} if family.thinking is None else {"reasoning_effort": "high"}


def reasoning_of(message) -> str:
    return (message.model_extra or {}).get("reasoning_content") or ""


@pytest.mark.parametrize("name", FAMILIES)
def test_chat_answer_and_reasoning_come_apart(oai: openai.OpenAI, name: str) -> None:
    family = FAMILIES[name]
    thought = THOUGHT if family.thinks else ""
    done = oai.chat.completions.create(model=f"{name}-answer", messages=USER, **switch(family))
    message = done.choices[0].message
    assert (message.content, reasoning_of(message)) == (ANSWER, thought)
    assert done.choices[0].finish_reason == "stop"
    chunks = list(
        oai.chat.completions.create(
            model=f"{name}-answer", messages=USER, stream=True, **switch(family)
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.content or "" for d in deltas) == ANSWER
    assert "".join(reasoning_of(d) for d in deltas) == thought


@pytest.mark.parametrize("name", FAMILIES)
def test_chat_tool_call_is_one_structured_call(oai: openai.OpenAI, name: str) -> None:
    done = oai.chat.completions.create(model=f"{name}-call", messages=USER, tools=TOOLS)
    choice = done.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", CITY)
    ]
    assert not choice.message.content
    chunks = list(
        oai.chat.completions.create(model=f"{name}-call", messages=USER, tools=TOOLS, stream=True)
    )
    deltas = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
    assert {t.index for t in deltas} == {0}
    assert deltas[0].id and [t.function.name for t in deltas if t.id] == ["get_weather"]
    pieces = [t.function.arguments for t in deltas if t.function and t.function.arguments]
    assert json.loads("".join(pieces)) == CITY  # in as many pieces as frames came
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ""
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


@pytest.mark.parametrize("name", FAMILIES)
def test_the_answers_log_probabilities_spell_the_answer(oai: openai.OpenAI, name: str) -> None:
    """Only the answer's tokens are scored: not the reasoning, not a marker, not a message
    header's channel or role (a channel grammar writes them between reasoning and answer)."""
    family = FAMILIES[name]
    done = oai.chat.completions.create(
        model=f"{name}-answer", messages=USER, logprobs=True, **switch(family)
    )
    scored = done.choices[0].logprobs
    assert scored is not None and scored.content is not None
    assert "".join(t.token for t in scored.content) == done.choices[0].message.content == ANSWER


@pytest.mark.parametrize("name", FAMILIES)
def test_a_tool_without_description_or_parameters_reaches_the_template(
    oai: openai.OpenAI, name: str
) -> None:
    """The APIs leave both optional; templates (gpt-oss's) use them unguarded."""
    bare = [{"type": "function", "function": {"name": "get_weather"}}]
    done = oai.chat.completions.create(model=f"{name}-call", messages=USER, tools=bare)
    [call] = done.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"


@pytest.mark.parametrize("name", FAMILIES)
def test_messages_thinking_and_tool_use(claude: anthropic.Anthropic, name: str) -> None:
    family = FAMILIES[name]
    thinking = {"type": "enabled", "budget_tokens": 1024}
    reply = claude.messages.create(
        model=f"{name}-answer",
        max_tokens=64,
        messages=USER,
        thinking=thinking,  # type: ignore[arg-type]
    )
    kinds = [
        (b.type, getattr(b, "thinking", None) or getattr(b, "text", None)) for b in reply.content
    ]
    expected = [("thinking", THOUGHT)] if family.thinks else []
    assert kinds == [*expected, ("text", ANSWER)]
    with claude.messages.stream(
        model=f"{name}-answer",
        max_tokens=64,
        messages=USER,
        thinking=thinking,  # type: ignore[arg-type]
    ) as stream:
        final = stream.get_final_message()
    assert [
        (b.type, getattr(b, "thinking", None) or getattr(b, "text", None)) for b in final.content
    ] == kinds

    called = claude.messages.create(
        model=f"{name}-call",
        max_tokens=64,
        messages=USER,
        tools=ANTHROPIC_TOOLS,  # type: ignore[arg-type]
    )
    assert called.stop_reason == "tool_use"
    assert [(b.type, b.name, b.input) for b in called.content if b.type == "tool_use"] == [
        ("tool_use", "get_weather", CITY)
    ]
    assert [b for b in called.content if b.type == "text"] == []
    with claude.messages.stream(
        model=f"{name}-call",
        max_tokens=64,
        messages=USER,
        tools=ANTHROPIC_TOOLS,  # type: ignore[arg-type]
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    partial = [
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]  # type: ignore[union-attr]
    assert json.loads("".join(partial)) == CITY
    assert final.stop_reason == "tool_use"
    assert [(b.name, b.input) for b in final.content if b.type == "tool_use"] == [
        ("get_weather", CITY)
    ]


def test_thinking_switch_of_the_template_follows_the_request(
    oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    """A template whose switch is a variable (here `thinking`): off by default, on when the
    client asks for thinking — through either API."""
    off = oai.chat.completions.create(model="sentinels-answer", messages=USER)
    assert (off.choices[0].message.content, reasoning_of(off.choices[0].message)) == (ANSWER, "")
    on = claude.messages.create(
        model="sentinels-answer", max_tokens=64, messages=USER,
        thinking={"type": "enabled", "budget_tokens": 512},
    )  # fmt: skip
    assert [b.type for b in on.content] == ["thinking", "text"]
    disabled = claude.messages.create(
        model="sentinels-answer", max_tokens=64, messages=USER, thinking={"type": "disabled"}
    )
    assert [(b.type, b.text) for b in disabled.content] == [("text", ANSWER)]  # type: ignore[union-attr]


def test_history_with_reasoning_and_tool_results_renders_for_every_family(
    oai: openai.OpenAI,
) -> None:
    """A second turn carrying the first turn's reasoning, its call and the tool's result goes
    back through each family's template (call ids in the shape the template demands)."""
    for name in FAMILIES:
        history = [
            *USER,
            {"role": "assistant", "content": "", "reasoning_content": THOUGHT,
             "tool_calls": [{"id": "call_0123456789abcdef", "type": "function",
                             "function": {"name": "get_weather", "arguments": json.dumps(CITY)}}]},
            {"role": "tool", "tool_call_id": "call_0123456789abcdef", "content": "sunny"},
        ]  # fmt: skip
        done = oai.chat.completions.create(model=f"{name}-call", messages=history, tools=TOOLS)  # type: ignore[arg-type]
        assert done.choices[0].finish_reason in ("tool_calls", "stop"), name


def test_models_lists_what_was_read_of_each_family(
    oai: openai.OpenAI, family_stack: RunningStack
) -> None:
    import httpx

    oai.chat.completions.create(model="bracket-args-call", messages=USER, tools=TOOLS)
    body = httpx.get(f"{family_stack.base_url}/v1/models").json()
    entry = next(m for m in body["data"] if m["id"] == "bracket-args-call")
    assert entry["dialect"]["tools"] == "tagged_json [TOOL_CALLS]"
    assert "tools" in entry["capabilities"]


RESPONSES_TOOLS = [{"type": "function", **TOOLS[0]["function"]}]


@pytest.mark.parametrize("name", FAMILIES)
def test_responses_reasoning_answer_and_function_call(oai: openai.OpenAI, name: str) -> None:
    family = FAMILIES[name]
    effort = {} if family.thinking is None else {"reasoning": {"effort": "high"}}
    answered = oai.responses.create(model=f"{name}-answer", input="Weather in Paris?", **effort)
    assert answered.output_text == ANSWER
    thoughts = [
        part.text
        for item in answered.output
        if item.type == "reasoning"
        for part in item.content or []
    ]
    assert "".join(thoughts) == (THOUGHT if family.thinks else "")
    for stream in (False, True):
        if stream:
            events = list(
                oai.responses.create(
                    model=f"{name}-call",
                    input="Weather in Paris?",
                    tools=RESPONSES_TOOLS,
                    stream=True,
                )
            )
            output = next(e for e in events if e.type == "response.completed").response.output
            grown = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
            assert json.loads("".join(grown)) == CITY
        else:
            output = oai.responses.create(
                model=f"{name}-call", input="Weather in Paris?", tools=RESPONSES_TOOLS
            ).output
        calls = [(i.name, json.loads(i.arguments)) for i in output if i.type == "function_call"]
        assert calls == [("get_weather", CITY)]
        assert [i for i in output if i.type == "message"] == []


def prompt_counter(name: str, folder: Path) -> Callable[..., int]:
    """How many tokens the neuron's prompt for USER has, for a family's template rendered
    with the given variables (bos and eos as the tiny models have them)."""
    import llama_cpp

    from cortex_neuron.chat_template import render_chat

    family = FAMILIES[name]
    built = build_tiny_gguf(
        folder / f"{name}-vocab.gguf", family.answer or (),
        specials=(IM_START, IM_END, *family.specials),
        chat_template=template(family.template), start=family.start,
    )  # fmt: skip
    vocab = llama_cpp.Llama(model_path=str(built.path), vocab_only=True, verbose=False)

    def prompt_tokens(**variables: object) -> int:
        text = render_chat(
            built.chat_template, USER, bos_token=IM_START, eos_token=IM_END,
            template_kwargs=variables,
        )  # fmt: skip
        return len(vocab.tokenize(text.encode(), add_bos=False, special=True))

    return prompt_tokens


def test_reasoning_effort_reaches_the_templates_own_variable(
    oai: openai.OpenAI, tmp_path: Path
) -> None:
    """A template with an effort variable (here harmony's `reasoning_effort`, written into
    the system message) renders the level the client asked for: the prompt the neuron ran
    is, token for token, the template rendered with that level."""
    prompt_tokens = prompt_counter("channels", tmp_path)
    expected = {level: prompt_tokens(reasoning_effort=level) for level in ("low", "high")}
    assert expected["low"] != prompt_tokens() != expected["high"]  # the level shows
    for effort, level in (("minimal", "low"), ("low", "low"), ("high", "high")):
        done = oai.chat.completions.create(
            model="channels-answer",
            messages=USER,
            reasoning_effort=effort,  # type: ignore[arg-type]
        )
        assert done.usage is not None
        assert done.usage.prompt_tokens == expected[level], effort
    default = oai.chat.completions.create(model="channels-answer", messages=USER)
    assert default.usage is not None and default.usage.prompt_tokens == prompt_tokens()
    responded = oai.responses.create(
        model="channels-answer", input=USER[0]["content"], reasoning={"effort": "high"}
    )
    assert responded.usage is not None and responded.usage.input_tokens == expected["high"]


def whole_prompt(usage: anthropic.types.Usage) -> int:
    """Anthropic's input_tokens leave out the prompt tokens read from the cache."""
    return usage.input_tokens + (usage.cache_read_input_tokens or 0)


def test_reasoning_budget_reaches_the_templates_own_variable(
    oai: openai.OpenAI, claude: anthropic.Anthropic, tmp_path: Path
) -> None:
    """A template with a budget variable (here Seed-OSS's `thinking_budget`) is told the
    Anthropic budget_tokens, the budget of an OpenAI effort, and 0 when thinking is off."""
    prompt_tokens = prompt_counter("seed", tmp_path)
    assert (
        len({prompt_tokens(), prompt_tokens(thinking_budget=512), prompt_tokens(thinking_budget=0)})
        == 3
    )
    told = claude.messages.create(
        model="seed-answer", max_tokens=64, messages=USER,
        thinking={"type": "enabled", "budget_tokens": 512},
    )  # fmt: skip
    assert whole_prompt(told.usage) == prompt_tokens(thinking_budget=512)
    off = claude.messages.create(
        model="seed-answer", max_tokens=64, messages=USER, thinking={"type": "disabled"}
    )
    assert whole_prompt(off.usage) == prompt_tokens(thinking_budget=0)
    low = oai.chat.completions.create(model="seed-answer", messages=USER, reasoning_effort="low")
    assert low.usage is not None and low.usage.prompt_tokens == prompt_tokens(thinking_budget=512)
    default = oai.chat.completions.create(model="seed-answer", messages=USER)
    assert default.usage is not None and default.usage.prompt_tokens == prompt_tokens()


def test_responses_reasoning_items_go_back_with_their_turn(oai: openai.OpenAI) -> None:
    """A Responses client replays the output it got: the reasoning item goes back to the
    template with the call that followed it (this template keeps it: the prompt grows)."""
    call = {"type": "function_call", "call_id": "call_1", "name": "get_weather",
            "arguments": json.dumps(CITY)}  # fmt: skip
    result = {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}
    thought = "A long thought about the weather in Paris"
    as_text = {"type": "reasoning", "id": "rs_1", "summary": [],
               "content": [{"type": "reasoning_text", "text": thought}]}  # fmt: skip
    as_summary = {"type": "reasoning", "id": "rs_2",
                  "summary": [{"type": "summary_text", "text": thought}]}  # fmt: skip

    def prompt_tokens(*items: dict) -> int:
        done = oai.responses.create(
            model="hermes-call",
            input=[*USER, *items],
            tools=RESPONSES_TOOLS,  # type: ignore[list-item]
        )
        assert done.usage is not None
        return done.usage.input_tokens

    bare = prompt_tokens(call, result)
    assert prompt_tokens(as_text, call, result) > bare + 5
    assert prompt_tokens(as_summary, call, result) == prompt_tokens(as_text, call, result)


@pytest.mark.parametrize("name", FAMILIES)
def test_completions_of_the_rendered_prompt_answer_without_reasoning(
    oai: openai.OpenAI, name: str
) -> None:
    """The fourth surface: a raw prompt (the family's own rendered chat prompt) on
    /v1/completions gets the answer alone, streamed and not; the reasoning stays out."""
    from cortex_neuron.chat_template import render_chat

    family = FAMILIES[name]
    switches = {"enable_thinking": True, "thinking": True} if family.thinking else {}
    prompt = render_chat(
        template(family.template), USER, bos_token=IM_START, eos_token=IM_END,
        template_kwargs=switches,
    )  # fmt: skip
    done = oai.completions.create(model=f"{name}-answer", prompt=prompt, max_tokens=64)
    assert done.choices[0].text == ANSWER
    assert done.choices[0].finish_reason == "stop"
    streamed = oai.completions.create(
        model=f"{name}-answer", prompt=prompt, max_tokens=64, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == ANSWER


@pytest.fixture
def llama(family_stack: RunningStack):
    import ollama

    return ollama.Client(host=family_stack.base_url)


@pytest.mark.parametrize("name", FAMILIES)
def test_ollama_chat_thinking_and_tool_calls(llama, name: str) -> None:
    """The Ollama surface: reasoning in message.thinking, the answer alone in content, and
    one tool call with its arguments as an object, streamed (NDJSON) and not."""
    family = FAMILIES[name]
    think = {"think": True} if family.thinking else {}
    done = llama.chat(model=f"{name}-answer", messages=USER, **think)
    assert (done.message.content, done.message.thinking or "") == (
        ANSWER, THOUGHT if family.thinks else ""
    )  # fmt: skip
    assert done.done and done.done_reason == "stop" and done.eval_count
    parts = list(llama.chat(model=f"{name}-answer", messages=USER, stream=True, **think))
    assert "".join(p.message.content or "" for p in parts) == ANSWER
    assert "".join(p.message.thinking or "" for p in parts) == (THOUGHT if family.thinks else "")
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    for stream in (False, True):
        replies = llama.chat(model=f"{name}-call", messages=USER, tools=TOOLS, stream=stream)
        calls = [
            (c.function.name, dict(c.function.arguments))
            for r in (replies if stream else [replies])
            for c in r.message.tool_calls or []
        ]
        assert calls == [("get_weather", CITY)], stream
