"""Model dialects read from real chat templates, and their output parsed on every split.

Each case is a family's real template (tests/fixtures/chat_templates), what its model
writes, and what a client must get: the answer, the reasoning and the tool calls, apart.
The text is fed to the parser as bytes, cut at every byte boundary and one byte at a time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache

import pytest

from cortex_neuron.channel import CallChunk, TextChunk
from cortex_neuron.dialect import Dialect, ParsedCall, detect_dialect, new_parser
from cortex_neuron.output_channels import OutputChannels
from tests.support.templates import template

WEATHER = {"name": "get_weather", "arguments": {"city": "Paris"}}
# The tools the cases' requests offer (a call to any other stays text).
SCHEMAS = {
    "get_weather": {"properties": {"city": {"type": "string"}, "days": {"type": "integer"}}},
    "get_time": {"properties": {"zone": {"type": "string"}}},
    "run": {"properties": {"code": {"type": "string"}}},
}


@dataclass(frozen=True)
class Case:
    template: str
    output: str
    reasoning: str = ""
    content: str = ""
    calls: tuple[dict, ...] = ()
    prompt: str = ""  # the end of the rendered prompt, where it matters
    facts: dict = field(default_factory=dict)  # expected dialect summary entries


CASES = {
    "hermes-json": Case(
        "Qwen-Qwen3-0.6B.jinja",
        '<think>\nweigh it\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        reasoning="weigh it",  # trimmed, and the answer's start after it
        calls=(WEATHER,),
        facts={
            "reasoning": "<think>…</think>",
            "tools": "json <tool_call> … </tool_call>",
            "thinking_switch": "enable_thinking",
        },
    ),
    "reasoning-trimmed-inside-kept": Case(
        "Qwen-Qwen3-0.6B.jinja",
        "<think>\n first\n\n second \n</think>\n\n Paris.\n\nNice.\n",
        reasoning="first\n\n second",
        content="Paris.\n\nNice.\n",  # the answer's own end stays as written
    ),
    "blank-between-calls": Case(
        "Qwen-Qwen3-0.6B.jinja",
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n',
        calls=(WEATHER, WEATHER),  # and no "\n\n" of content between them
    ),
    "xml-function": Case(
        "Qwen3-Coder.jinja",
        "On it.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
        "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>",
        content="On it.\n",
        calls=({"name": "get_weather", "arguments": {"city": "Paris", "days": 3}},),
        facts={"tools": "tagged_args <tool_call> … </tool_call>"},
    ),
    "xml-function-code": Case(
        "Qwen3-Coder.jinja",
        '<tool_call>\n<function=run>\n<parameter=code>\nprint("a\\tb")\n\nx = "</p>"\n\n'
        "</parameter>\n</function>\n</tool_call>",
        calls=({"name": "run", "arguments": {"code": 'print("a\\tb")\n\nx = "</p>"\n'}},),
    ),
    "forced-open-xml": Case(
        "Qwen3.5-4B.jinja",
        "\nweigh it\n</think>\n\nSunny.",
        reasoning="weigh it",
        content="Sunny.",
        prompt="<|im_start|>assistant\n<think>\n",
        facts={"reasoning": "<think>…</think>"},
    ),
    "arg-key-value": Case(
        "GLM-4.6.jinja",
        "<think>hm</think>Checking.<tool_call>get_weather\n<arg_key>city</arg_key>\n"
        "<arg_value>Paris</arg_value>\n</tool_call>",
        reasoning="hm",
        content="Checking.",
        calls=(WEATHER,),
    ),
    "invoke": Case(
        "MiniMax-M2.jinja",
        'hm</think>\n<minimax:tool_call>\n<invoke name="get_weather">\n'
        '<parameter name="city">Paris</parameter>\n</invoke>\n</minimax:tool_call>',
        reasoning="hm",
        calls=(WEATHER,),
        prompt="]~b]ai\n<think>\n",
    ),
    "seed": Case(
        "ByteDance-Seed-OSS.jinja",
        "<seed:think>hm</seed:think>Sure.<seed:tool_call>\n<function=get_weather>\n"
        "<parameter=city>Paris</parameter>\n</function>\n</seed:tool_call>",
        reasoning="hm",
        content="Sure.",
        calls=(WEATHER,),
        facts={"reasoning": "<seed:think>…</seed:think>"},
    ),
    "sentinels": Case(
        "deepseek-ai-DeepSeek-V3.1.jinja",
        'hm</think>Sure.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{"city": "Paris"}'
        "<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
        reasoning="hm",
        content="Sure.",
        calls=(WEATHER,),
        prompt="<｜Assistant｜><think>",
        facts={"thinking_switch": "enable_thinking, thinking"},
    ),
    "sentinels-fenced": Case(
        "llama-cpp-deepseek-r1.jinja",
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
        '{"city": "Paris"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
        calls=(WEATHER,),
    ),
    "indexed-ids": Case(
        "moonshotai-Kimi-K2.jinja",
        "Two.<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0"
        '<|tool_call_argument_begin|>{"city": "Paris"}<|tool_call_end|><|tool_call_begin|>'
        "functions.get_time:1<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|>",
        content="Two.",
        calls=(WEATHER, {"name": "get_time", "arguments": {}}),
    ),
    "bracket-args": Case(
        "unsloth-mistral-Devstral-Small-2507.jinja",
        'Sure.[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}',
        content="Sure.",
        calls=(WEATHER,),
        facts={"tools": "tagged_json [TOOL_CALLS]"},
    ),
    "bracket-args-parallel": Case(
        "unsloth-mistral-Devstral-Small-2507.jinja",
        '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[ARGS]{}',
        calls=(WEATHER, {"name": "get_time", "arguments": {}}),
    ),
    "bracket-call-id": Case(
        "Mistral-Small-3.2-24B-Instruct-2506.jinja",
        '[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{"city": "Paris"}',
        calls=(WEATHER,),
    ),
    "bracket-array": Case(
        "mistralai-Mistral-Nemo-Instruct-2407.jinja",
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}]',
        calls=(WEATHER,),
    ),
    "bracket-think": Case(
        "mistralai-Ministral-3-14B-Reasoning-2512.jinja",
        '[THINK]hm[/THINK]Sure.[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}',
        reasoning="hm",
        content="Sure.",
        calls=(WEATHER,),
    ),
    "bare-json": Case(
        "meta-llama-Llama-3.1-8B-Instruct.jinja",
        '{"name": "get_weather", "parameters": {"city": "Paris"}}',
        calls=(WEATHER,),
        facts={"tools": "json (bare)"},
    ),
    "bare-json-text": Case(
        "meta-llama-Llama-3.1-8B-Instruct.jinja", "Paris {is} nice.", content="Paris {is} nice."
    ),
    "action-list": Case(
        "CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja",
        '<|START_THINKING|>plan<|END_THINKING|><|START_ACTION|>[\n    {"tool_call_id": "0", '
        '"tool_name": "get_weather", "parameters": {"city": "Paris"}}\n]<|END_ACTION|>',
        reasoning="plan",
        calls=(WEATHER,),
    ),
    "response-wrapper": Case(
        "CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja",
        "<|START_THINKING|>plan<|END_THINKING|><|START_RESPONSE|>Paris.<|END_RESPONSE|>",
        reasoning="plan",
        content="Paris.",
    ),
    "toolcall-list": Case(
        "NVIDIA-Nemotron-Nano-v2.jinja",
        '<think>hm</think><TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Paris"}}]</TOOLCALL>',
        reasoning="hm",
        calls=(WEATHER,),
    ),
    "tool-calls-tag": Case(
        "unsloth-Apriel-1.5.jinja",
        'Sure.<tool_calls>[{"name": "get_weather", "arguments": {"city": "Paris"}}]</tool_calls>',
        content="Sure.",
        calls=(WEATHER,),
    ),
    "granite": Case(
        "ibm-granite-granite-4.0.jinja",
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        calls=(WEATHER,),
    ),
    "channels-answer": Case(
        "openai-gpt-oss-120b.jinja",
        "<|channel|>analysis<|message|>weigh it<|end|><|start|>assistant<|channel|>final"
        "<|message|>Paris.<|return|>",
        reasoning="weigh it",
        content="Paris.",
        facts={"reasoning": "channels", "effort_variable": "reasoning_effort"},
    ),
    "channels-call": Case(
        "openai-gpt-oss-120b.jinja",
        "<|channel|>analysis<|message|>weigh it<|end|><|start|>assistant<|channel|>commentary "
        'to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>',
        reasoning="weigh it",
        calls=(WEATHER,),
    ),
    "channels-recipient-first": Case(
        "openai-gpt-oss-120b.jinja",
        ' to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Paris"}<|call|>',
        calls=(WEATHER,),
        prompt="<|start|>user<|message|>Weather?<|end|><|start|>assistant",
    ),
    "channels-after-the-role": Case(
        "openai-gpt-oss-120b.jinja",
        "<|channel|>analysis<|message|>weigh it<|end|><|start|>assistant<|channel|>final"
        "<|message|>Paris.<|return|>",
        reasoning="weigh it",
        content="Paris.",
        prompt="<|start|>user<|message|>Weather?<|end|><|start|>assistant",
    ),
    "id-before-name": Case(
        "upstage-Solar-Open-100B.jinja",
        "<|think|>hm<|end|>Sure.<|tool_calls|><|tool_call:begin|>x7Yq2<|tool_call:name|>get_weather"
        '<|tool_call:args|>{"city": "Paris"}<|tool_call:end|><|calls|>',
        reasoning="hm",
        content="Sure.",
        calls=(WEATHER,),
    ),
    "answer-header": Case(
        "upstage-Solar-Open-100B.jinja",
        "<|think|>hm<|end|><|begin|>assistant<|content|>Paris.",
        reasoning="hm",
        content="Paris.",
    ),
    "python-calls": Case(
        "LFM2.5-8B-A1B.jinja",
        "<think>hm</think>Sure.<|tool_call_start|>[get_weather(city='Paris'), "
        'get_time(zone="UTC", exact=True)]<|tool_call_end|>',
        reasoning="hm",
        content="Sure.",
        calls=(WEATHER, {"name": "get_time", "arguments": {"zone": "UTC", "exact": True}}),
        facts={"tools": "python <|tool_call_start|> … <|tool_call_end|>"},
    ),
    "name-as-key": Case(
        "Apertus-8B-Instruct.jinja",
        '<|tools_prefix|>[{"get_weather": {"city": "Paris"}}]<|tools_suffix|>',
        calls=(WEATHER,),
    ),
    "name-as-key-needs-a-tool-of-that-name": Case(
        "Apertus-8B-Instruct.jinja",
        '<|tools_prefix|>[{"answer": {"city": "Paris"}}]<|tools_suffix|>',
        content='<|tools_prefix|>[{"answer": {"city": "Paris"}}]<|tools_suffix|>',
    ),
    "attribute-typed-args": Case(
        "deepseek-ai-DeepSeek-V3.2.jinja",
        'hm</think>Sure.<｜DSML｜function_calls>\n<｜DSML｜invoke name="get_weather">\n'
        '<｜DSML｜parameter name="city" string="true">Paris</｜DSML｜parameter>\n'
        '<｜DSML｜parameter name="days" string="false">3</｜DSML｜parameter>\n'
        "</｜DSML｜invoke>\n</｜DSML｜function_calls>",
        reasoning="hm",
        content="Sure.",
        calls=({"name": "get_weather", "arguments": {"city": "Paris", "days": 3}},),
        prompt="<｜Assistant｜><think>",
    ),
    "quoted-strings": Case(
        "google-gemma-4-31B-it.jinja",
        '<|channel>thought\nhm\n<channel|>Sure.<|tool_call>call:get_weather{city:<|"|>Pa"ris, '
        '{x}<|"|>,days:3}<tool_call|>',
        reasoning="hm",
        content="Sure.",
        calls=({"name": "get_weather", "arguments": {"city": 'Pa"ris, {x}', "days": 3}},),
        prompt="<|turn>model\n",
        facts={"reasoning": "<|channel>thought…<channel|>"},
    ),
    "quoted-strings-thinking-off": Case(
        "google-gemma-4-31B-it.jinja",
        "Paris.",
        content="Paris.",
        prompt="<|turn>model\n<|channel>thought\n<channel|>",
    ),
    "unoffered-tool-stays-text": Case(
        "Qwen-Qwen3-0.6B.jinja",
        '<tool_call>\n{"name": "delete_all", "arguments": {}}\n</tool_call>',
        content='<tool_call>\n{"name": "delete_all", "arguments": {}}\n</tool_call>',
    ),
    "unoffered-recipient-stays-text": Case(
        "openai-gpt-oss-120b.jinja",
        '<|channel|>commentary to=functions.delete_all <|constrain|>json<|message|>{"all": true}<|call|>',
        content='{"all": true}',
    ),
    # Fed a byte at a time, the blank line is a token of its own: it stays in the answer.
    "channels-blank-line": Case(
        "openai-gpt-oss-120b.jinja",
        "<|channel|>final<|message|>Hello.\n\nWorld.<|return|>",
        content="Hello.\n\nWorld.",
    ),
    # The token limit came right after the call's name: the call, with no arguments.
    "bracket-args-cut-before-arguments": Case(
        "unsloth-mistral-Devstral-Small-2507.jinja",
        "[TOOL_CALLS]get_weather[ARGS]",
        calls=({"name": "get_weather", "arguments": {}},),
    ),
    # Cut right after a name not offered: no call, the text as written.
    "unoffered-name-cut-off-stays-text": Case(
        "unsloth-mistral-Devstral-Small-2507.jinja",
        "[TOOL_CALLS]delete_all[ARGS]",
        content="[TOOL_CALLS]delete_all[ARGS]",
    ),
    # One call offered, the next not: the first is a call, the second its text.
    "second-call-unoffered-is-text": Case(
        "unsloth-mistral-Devstral-Small-2507.jinja",
        '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]delete_all[ARGS]{}',
        content='{"name": "delete_all", "arguments": {}}',
        calls=(WEATHER,),
    ),
    "broken-block-stays-text": Case(
        "Qwen-Qwen3-0.6B.jinja",
        '<tool_call>\n{"name": broken\n</tool_call>',
        content='<tool_call>\n{"name": broken\n</tool_call>',
    ),
}


@cache
def dialect_of(name: str) -> Dialect:
    return detect_dialect(template(name), bos="<s>", eos="</s>")


def chunks_of(case: Case, cuts: list[int], stream_calls: bool) -> list[tuple[int, object]]:
    """Each chunk with the number of bytes fed when it came out."""
    dialect = dialect_of(case.template)
    output = OutputChannels(dialect, case.prompt, (), SCHEMAS, stream_calls)
    data = case.output.encode()
    chunks: list[tuple[int, object]] = []
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        chunks += [(end, c) for c in output.add(data[start:end])]
    chunks += [(len(data), c) for c in output.finish()]
    return chunks


def calls_of(chunks: list[CallChunk]) -> list[dict]:
    """Calls as a client assembles them: a first chunk names one, the others add text."""
    calls: list[dict] = []
    for chunk in chunks:
        if chunk.first:
            calls.append({"name": chunk.name, "arguments": ""})
        calls[-1]["arguments"] += chunk.arguments
    return [{**c, "arguments": json.loads(c["arguments"])} for c in calls]


def parse(case: Case, cuts: list[int], stream_calls: bool = False) -> tuple[str, str, list[dict]]:
    chunks = [c for _, c in chunks_of(case, cuts, stream_calls)]
    text = "".join(c.text for c in chunks if isinstance(c, TextChunk) and c.kind == "text")
    thought = "".join(c.text for c in chunks if isinstance(c, TextChunk) and c.kind == "reasoning")
    return text, thought, calls_of([c for c in chunks if isinstance(c, CallChunk)])


@pytest.mark.parametrize("stream_calls", [False, True], ids=["whole-calls", "streamed-calls"])
@pytest.mark.parametrize("name", CASES)
def test_output_parses_the_same_at_every_split(name: str, stream_calls: bool) -> None:
    case = CASES[name]
    expected = (case.content, case.reasoning, list(case.calls))
    size = len(case.output.encode())
    assert parse(case, [], stream_calls) == expected
    assert parse(case, list(range(1, size)), stream_calls) == expected
    for cut in range(1, size):
        assert parse(case, [cut], stream_calls) == expected, f"split at byte {cut}"


def streams_calls(case: Case) -> bool:
    """Cases whose calls have arguments to grow, in every format but call expressions and
    quoted-string objects (read whole, once the section ends: their text is not the JSON a
    client gets)."""
    tools = dialect_of(case.template).tools
    return any(c["arguments"] for c in case.calls) and (
        tools is None or (tools.kind != "python" and not tools.string_quote)
    )


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if streams_calls(c)])
def test_streamed_call_is_named_first_and_its_arguments_grow(name: str) -> None:
    """Fed a byte at a time, each call's name comes out before its arguments are whole,
    and the arguments come out in pieces while the model writes them, not at the end."""
    case = CASES[name]
    size = len(case.output.encode())
    fed = [
        (at, c) for at, c in chunks_of(case, list(range(1, size)), True) if isinstance(c, CallChunk)
    ]
    starts = [i for i, (_, c) in enumerate(fed) if c.first]
    for begin, end in zip(starts, [*starts[1:], len(fed)], strict=True):
        call = fed[begin:end]
        assert call[0][1].name and call[-1][1].last
        grown = [at for at, c in call if c.arguments]
        if "".join(c.arguments for _, c in call) == "{}":
            continue  # nothing to grow
        assert call[0][0] < grown[-1], "named before the arguments are whole"
        assert len(set(grown)) >= 2, "the arguments came out as they were written"


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.facts])
def test_dialect_facts_come_from_the_template(name: str) -> None:
    case = CASES[name]
    summary = dialect_of(case.template).summary()
    assert {k: summary[k] for k in case.facts} == case.facts


# Blocks the model closed on arguments that are not JSON: the block stays text (as any
# block that does not parse) — unless the calls were streamed, when the client already has
# the call as it grew; it keeps its arguments as written.
MALFORMED = {
    "hermes-json": Case(
        "Qwen-Qwen3-0.6B.jinja",
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": \n</tool_call>',
        content='<tool_call>\n{"name": "get_weather", "arguments": {"city": \n</tool_call>',
    ),
    "channels": Case(
        "openai-gpt-oss-120b.jinja",
        "<|channel|>commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"city": <|call|>',
        content='{"city": ',
    ),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_a_block_closed_on_arguments_that_are_not_json_is_text(name: str) -> None:
    case = MALFORMED[name]
    size = len(case.output.encode())
    for cuts in ([], list(range(1, size)), *([cut] for cut in range(1, size))):
        assert parse(case, cuts) == (case.content, "", []), f"split at {cuts}"
        streamed = [c for _, c in chunks_of(case, cuts, True) if isinstance(c, CallChunk)]
        assert [c.name for c in streamed if c.first] == ["get_weather"]
        assert "".join(c.arguments for c in streamed).strip() == '{"city":'


@pytest.mark.parametrize(
    ("written", "named"),
    [
        ('{"name": "search", "arg', ["search"]),  # whole, though another name begins so
        ('{"name": "search_w', ["search_web"]),  # only one name begins so
        ('{"name": "sea', []),  # two names do: none
    ],
)
def test_a_forced_call_cut_off_is_the_call_its_name_so_far_says(
    written: str, named: list[str]
) -> None:
    schemas = {"search": {}, "search_web": {}}
    parser = new_parser(Dialect(), "", schemas, calls="forced")
    pieces = [*parser.feed(written), *parser.finish()]
    assert [p.name for p in pieces if isinstance(p, ParsedCall)] == named
    assert not [p for p in pieces if isinstance(p, tuple)]  # the grammar's frame is no text
