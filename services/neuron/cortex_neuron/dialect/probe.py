"""Reading a dialect out of a chat template by rendering probes and comparing them (pure).

The template is rendered with sentinel values — a reply, a reasoning text, a tool call with
known name, id and arguments, thinking switches on and off — and the markers around each
sentinel are what the model itself writes. (The approach of llama.cpp's chat autoparser;
this is our own, smaller take.) The vocabulary is consulted only where a template says
nothing: a single-token reasoning pair the template never writes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2.meta

from cortex_neuron.chat_template import (
    CHATML,
    TemplateError,
    compile_template,
    environment,
    render_chat,
)
from cortex_neuron.dialect.model import ChannelFormat, Dialect, ReasoningFormat, ToolFormat
from cortex_neuron.dialect.text import (
    MARKER,
    common_prefix,
    common_suffix,
    first_marker,
    last_marker,
    markers_in,
    whole_markers_prefix,
    whole_markers_suffix,
)
from cortex_neuron.dialect.tool_bodies import relaxed_object

USER = "PROBE_USER_TEXT"
ANSWER = "PROBE_ANSWER_TEXT"
THOUGHT = "PROBE_THOUGHT_TEXT"
NAME, NAME2 = "probe_fn", "probe_gn"
KEY, KEY2 = "probe_key", "probe_key2"
VALUE, VALUE2 = "probe_val", "probe_val2"
CALL_IDS = {"": ("call_probe1", "call_probe2"), "alnum9": ("a1b2c3d4e", "f5g6h7i8j")}
REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
# Reasoning tag pairs a template may mention without rendering (probed in this order).
KNOWN_PAIRS: tuple[tuple[str, str], ...] = (
    ("<think>", "</think>"),
    ("[THINK]", "[/THINK]"),
    ("<seed:think>", "</seed:think>"),
    ("<|START_THINKING|>", "<|END_THINKING|>"),
    ("<thought>", "</thought>"),
    ("<reasoning>", "</reasoning>"),
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": "probe",
            "parameters": {
                "type": "object",
                "properties": {KEY: {"type": "string"}, KEY2: {"type": "string"}},
            },
        },
    }
    for name in (NAME, NAME2)
]


class Renderer:
    def __init__(self, template: str, bos: str, eos: str) -> None:
        self.template, self.bos, self.eos = template, bos, eos

    def __call__(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        gen: bool = False,
        tools: bool = False,
        **variables: object,
    ) -> str | None:
        try:
            return render_chat(
                self.template, messages, bos_token=self.bos, eos_token=self.eos,
                template_kwargs=variables, tools=TOOLS if tools else None,
                add_generation_prompt=gen,
            )  # fmt: skip
        except TemplateError:
            return None


def _user() -> dict[str, Any]:
    return {"role": "user", "content": USER}


def _reply(rendered: str | None, prompt: str) -> str:
    """The assistant's part of a render: what follows the user's turn and the prompt."""
    if rendered is None:
        return ""
    if rendered.startswith(prompt):
        return rendered[len(prompt) :]
    at = rendered.find(USER)
    if at < 0:
        return rendered[len(common_prefix(prompt, rendered)) :]
    rest = rendered[at + len(USER) :]
    header = prompt[prompt.find(USER) + len(USER) :] if USER in prompt else ""
    return rest[len(whole_markers_prefix(common_prefix(header, rest))) :]


def detect_dialect(
    template: str | None,
    *,
    bos: str = "",
    eos: str = "",
    vocab_pair: tuple[str, str] | None = None,
    vocab_tool_pair: tuple[str, str] | None = None,
) -> Dialect:
    """The dialect of a template (raises TemplateError if it does not compile).
    `vocab_pair`, `vocab_tool_pair`: reasoning and tool-call marker pairs whose markers are
    single tokens of the vocabulary, used where the template writes none."""
    source = template or CHATML
    compile_template(source)
    render = Renderer(source, bos, eos)
    names = _variables(source)
    prompt = render([_user()], gen=True) or ""
    plain = _reply(render([_user(), {"role": "assistant", "content": ANSWER}]), prompt)
    turn_end = _turn_end(prompt, plain)
    switches, effort = _switches(render, names)
    budget = _budget_variable(render, names)
    field, channels = "", _channels(source)
    reasoning = None
    # Reasoning is read against the prompt with thinking on (off, some templates write an
    # empty reasoning block into the prompt, which hides the opener).
    thinking_prompt = render([_user()], gen=True, **dict.fromkeys(switches, True)) or prompt
    for name in REASONING_FIELDS:
        found = _rendered_reasoning(render, thinking_prompt, name)
        if found is not None:
            field, reasoning = name, found
            break
    if channels is not None:
        reasoning = None
        channels = _channel_names(channels, render, prompt, field)
    elif reasoning is None:
        reasoning = _mentioned_pair(source, vocab_pair)
    elif not reasoning.open:
        # The template wrote the opener into the prompt: take it from the pair it mentions.
        known = _mentioned_pair(source, vocab_pair)
        if known is not None and known.close == reasoning.close:
            reasoning = ReasoningFormat(known.open, known.close)
    tools, as_text, id_style = (None, False, "")
    if "tools" in names or "tool_calls" in source:
        tools, as_text, id_style = _tools(render, prompt, turn_end, reasoning)
    if tools is None and vocab_tool_pair is not None:
        tools = ToolFormat("json", *vocab_tool_pair)
    if channels is not None:
        tools = None  # calls are a channel's recipients
    return Dialect(
        reasoning=reasoning,
        tools=tools,
        channels=channels,
        content_markers=()
        if channels
        else (
            *_content_markers(plain, turn_end, reasoning),
            *_answer_header(render, prompt, field, reasoning),
        ),
        thinking_switches=switches,
        effort_variable=effort,
        budget_variable=budget,
        reasoning_field=field,
        arguments_as_text=as_text,
        call_id_style=id_style,  # type: ignore[arg-type]
    )


def _turn_end(prompt: str, plain: str) -> str:
    """The marker that ends the assistant's turn: the one that ends the user's, if the
    reply has it too, else the first marker after the reply's text."""
    after = plain.partition(ANSWER)[2]
    user_end = first_marker(prompt.partition(USER)[2])
    return user_end if user_end and user_end in after else first_marker(after)


def _variables(source: str) -> set[str]:
    return set(jinja2.meta.find_undeclared_variables(environment().parse(source)))


# --- switches ---------------------------------------------------------------------------


def _switches(render: Renderer, names: set[str]) -> tuple[tuple[str, ...], str]:
    """Template variables that change the prompt: boolean thinking switches, and an effort
    level ("low" vs "high")."""
    messages = [_user()]
    switches = []
    for name in sorted(names):
        if re.search("effort|budget", name, re.I) or not re.search("think|reason", name, re.I):
            continue
        on = render(messages, gen=True, **{name: True})
        off = render(messages, gen=True, **{name: False})
        if on is not None and off is not None and on != off:
            switches.append(name)
    effort = ""
    for name in sorted(names):
        if re.search("effort", name, re.I):
            low = render(messages, gen=True, **{name: "low"})  # type: ignore[arg-type]
            high = render(messages, gen=True, **{name: "high"})  # type: ignore[arg-type]
            if low is not None and high is not None and low != high:
                effort = name
                break
    return tuple(switches), effort


def _budget_variable(render: Renderer, names: set[str]) -> str:
    """A template variable that takes the reasoning budget in tokens (the prompt tells the
    model how much it may think)."""
    for name in sorted(names):
        if re.search("budget", name, re.I) and re.search("think|reason", name, re.I):
            small = render([_user()], gen=True, **{name: 512})  # type: ignore[arg-type]
            large = render([_user()], gen=True, **{name: 8192})  # type: ignore[arg-type]
            if small is not None and large is not None and small != large:
                return name
    return ""


# --- reasoning --------------------------------------------------------------------------


def _rendered_reasoning(render: Renderer, prompt: str, field: str) -> ReasoningFormat | None:
    """The markers around reasoning that the template writes back for `field`."""
    call = _call(CALL_IDS[""][0], NAME, {KEY: VALUE})
    for message in (
        {"role": "assistant", "content": ANSWER, field: THOUGHT},
        {"role": "assistant", "content": "", field: THOUGHT, "tool_calls": [call]},
    ):
        reply = _reply(render([_user(), message], tools="tool_calls" in message), prompt)
        if THOUGHT not in reply:
            continue
        before, _, after = reply.partition(THOUGHT)
        close = first_marker(after)
        if close:
            return ReasoningFormat(_opener(before), close)
    return None


def _opener(before: str) -> str:
    """The marker the reasoning follows, with the one word it may name after it
    (`<|channel>thought`); "" when the template writes none."""
    marker = last_marker(before)
    if marker:
        return marker
    named = re.search(r"(?:" + MARKER.pattern + r")[ \t]*\w+\s*$", before)
    return named.group(0).strip() if named else ""


def _mentioned_pair(source: str, vocab_pair: tuple[str, str] | None) -> ReasoningFormat | None:
    for open_text, close_text in KNOWN_PAIRS:
        if open_text in source and close_text in source:
            return ReasoningFormat(open_text, close_text)
    if vocab_pair is not None:
        return ReasoningFormat(*vocab_pair, source="vocabulary")
    return None


# --- channels ---------------------------------------------------------------------------

CHANNEL_MARKERS = ("<|channel|>", "<|message|>")


def _channels(source: str) -> ChannelFormat | None:
    if not all(marker in source for marker in CHANNEL_MARKERS):
        return None
    ends = tuple(m for m in ("<|end|>", "<|return|>", "<|call|>") if m in source)
    return ChannelFormat(
        start="<|start|>" if "<|start|>" in source else "",
        channel=CHANNEL_MARKERS[0],
        message=CHANNEL_MARKERS[1],
        ends=ends or ("<|end|>",),
        constrain="<|constrain|>" if "<|constrain|>" in source else "",
    )


def _channel_names(
    channels: ChannelFormat, render: Renderer, prompt: str, field: str
) -> ChannelFormat:
    """The reasoning channel's and the answer channel's names, as the template writes them."""
    message = {"role": "assistant", "content": ANSWER, **({field: THOUGHT} if field else {})}
    reply = _reply(render([_user(), message, _user()]), prompt) or ""
    pattern = re.escape(channels.channel) + r"(\w+)" + re.escape(channels.message)
    names = {m.group(1): reply[m.end() :] for m in re.finditer(pattern, reply)}
    thinking = next((n for n, rest in names.items() if rest.startswith(THOUGHT)), "analysis")
    answer = next((n for n, rest in names.items() if rest.startswith(ANSWER)), "final")
    c = channels
    header = f"{c.ends[0]}{c.start}assistant{c.channel}{answer}{c.message}"
    return ChannelFormat(
        start=channels.start, channel=channels.channel, message=channels.message,
        ends=channels.ends, constrain=channels.constrain, reasoning_channel=thinking,
        answer_header=header,
    )  # fmt: skip


# --- content wrappers -------------------------------------------------------------------


def _answer_header(
    render: Renderer, prompt: str, field: str, reasoning: ReasoningFormat | None
) -> tuple[str, ...]:
    """What the template writes between the reasoning's close and the answer when it is
    more than wrapper markers: a new message header (`<|begin|>assistant<|content|>`) that
    the model writes too, and that is no part of the answer."""
    if reasoning is None or not field:
        return ()
    message = {"role": "assistant", "content": ANSWER, field: THOUGHT}
    reply = _reply(render([_user(), message]), prompt)
    after = reply.partition(THOUGHT)[2].partition(reasoning.close)[2]
    header = after.partition(ANSWER)[0].strip() if ANSWER in after else ""
    words = MARKER.sub("", header).strip()
    return (header,) if header and words and markers_in(header) else ()


def _content_markers(
    plain: str, turn_end: str, reasoning: ReasoningFormat | None
) -> tuple[str, ...]:
    """Markers the template wraps around an answer (beyond the turn's own end)."""
    if ANSWER not in plain:
        return ()
    before, _, after = plain.partition(ANSWER)
    if turn_end:
        after = after.split(turn_end, 1)[0]
    skip = {turn_end, *((reasoning.open, reasoning.close) if reasoning else ())}
    found = [m.group(0) for m in markers_in(before + "\n" + after)]
    return tuple(dict.fromkeys(m for m in found if m not in skip))


# --- tool calls -------------------------------------------------------------------------


def _call(
    call_id: str, name: str, arguments: dict[str, Any], as_text: bool = False
) -> dict[str, Any]:
    args: Any = json.dumps(arguments) if as_text else arguments
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def _assistant(calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {"role": "assistant", "content": "", "tool_calls": calls}


def _tools(
    render: Renderer, prompt: str, turn_end: str, reasoning: ReasoningFormat | None
) -> tuple[ToolFormat | None, bool, str]:
    for id_style, ids in CALL_IDS.items():
        for as_text in (False, True):

            def reply(arguments: dict[str, Any]) -> str:
                call = _call(ids[0], NAME, arguments, as_text)  # noqa: B023
                return _reply(render([_user(), _assistant([call])], tools=True), prompt)

            one = reply({KEY: VALUE})
            if KEY not in one or (NAME not in one and ids[0] not in one):
                continue
            region = _call_region(one, turn_end, reasoning)
            two_args = _call_region(reply({KEY: VALUE, KEY2: VALUE2}), turn_end, reasoning)
            found = _tool_format(region, ids[0], two_args)
            return found, as_text, id_style
    return None, False, ""


def _call_region(reply: str, turn_end: str, reasoning: ReasoningFormat | None) -> str:
    """The part of an assistant reply that holds its tool calls."""
    if turn_end and turn_end in reply:
        reply = reply[: reply.rfind(turn_end)]
    if reasoning is not None and reasoning.close in reply:
        head, _, tail = reply.partition(reasoning.close)
        if not head.replace(reasoning.open, "").strip():
            reply = tail
    return reply.strip()


def _json_span(text: str, inside: int) -> tuple[int, int] | None:
    """The outermost JSON object or array of `text` that spans position `inside`."""
    decoder = json.JSONDecoder()
    for start in range(inside + 1):
        if text[start] not in "{[":
            continue
        try:
            _, end = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if end > inside:
            return start, end
    return None


def _json_after(text: str, key: str) -> tuple[int, int] | None:
    """The first JSON object in `text` that holds `key`."""
    decoder = json.JSONDecoder()
    for start, char in enumerate(text):
        if char != "{":
            continue
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, dict) and key in value:
            return start, end
    return None


def _split_markers(before: str, after: str) -> tuple[str, str, str, str]:
    """(section_open, call_open) from the text before a call; (call_close, section_close)
    from the text after it."""
    before, after = before.strip(), after.strip()
    section_open = first_marker(before) or before
    call_open = before[len(section_open) :].strip() if before.startswith(section_open) else ""
    found = markers_in(after)
    section_close = found[-1].group(0) if found else ""
    call_close = after[: found[-1].start()].strip() if found else after
    return section_open, call_open, call_close, section_close


def _tool_format(region: str, call_id: str, two_args: str) -> ToolFormat | None:
    at = region.find(NAME)
    name_in_id = at < 0
    if name_in_id:
        at = region.find(call_id)
    name_len = len(call_id) if name_in_id else len(NAME)
    python = re.search(r"[\[(\s]*" + re.escape(NAME) + r"\(\s*" + re.escape(KEY) + r"\s*=", region)
    if python is not None and not name_in_id:
        before, after = region[: python.start()], region[python.end() :]
        tail = after[after.rfind(")") + 1 :].lstrip("]) \n")
        return ToolFormat("python", last_marker(before) or before.strip(), first_marker(tail))
    span = _json_span(region, at)
    if span is not None and KEY in region[span[0] : span[1]]:
        section_open = last_marker(region[: span[0]]) or region[: span[0]].strip()
        return ToolFormat("json", section_open, first_marker(region[span[1] :]))
    before, after_name = region[:at], region[at + name_len :]
    args = _json_after(after_name, KEY)
    if args is not None:
        mid, post = after_name[: args[0]], after_name[args[1] :]
        section_open, call_open, call_close, section_close = _split_markers(before, post)
        id_open = id_close = id_before = ""
        if not name_in_id and call_id in call_open:  # the id comes before the name
            call_open, _, id_before = (part.strip() for part in call_open.partition(call_id))
        name_close = mid.strip()
        if not name_in_id and call_id in mid:
            id_open, _, id_close = (part.strip() for part in mid.partition(call_id))
            name_close = ""
        return ToolFormat(
            "tagged_json", section_open, section_close, call_open, name_close, call_close,
            id_open=id_open, id_close=id_close, name_in_id=name_in_id, id_before=id_before,
        )  # fmt: skip
    quote = _string_quote(after_name)
    brace = after_name.find("{")
    relaxed = relaxed_object(after_name[brace:], quote) if quote and brace >= 0 else None
    if relaxed is not None and KEY in relaxed[0]:
        post = after_name[brace + relaxed[1] :]
        section_open, call_open, call_close, section_close = _split_markers(before, post)
        return ToolFormat(
            "tagged_json", section_open, section_close, call_open, after_name[:brace].strip(),
            call_close, string_quote=quote,
        )  # fmt: skip
    return _tagged_args(before, two_args)


def _string_quote(text: str) -> str:
    """The marker written on both sides of a string value, if the template quotes strings
    with one (`<|"|>VALUE<|"|>`)."""
    at = text.find(VALUE)
    if at < 0:
        return ""
    before, after = text[:at], text[at + len(VALUE) :]
    opener = last_marker(before)
    if opener and before.endswith(opener) and after.startswith(opener):
        return opener
    return ""


def _tagged_args(before: str, region: str) -> ToolFormat | None:
    """Arguments as KEY/VALUE pairs between markers, learned from a call with two."""
    positions = [region.find(s) for s in (NAME, KEY, VALUE, KEY2, VALUE2)]
    if min(positions) < 0 or positions != sorted(positions):
        return None
    name_at, key_at, value_at, key2_at, value2_at = positions
    name_to_key = region[name_at + len(NAME) : key_at]
    key_mid = region[key_at + len(KEY) : value_at]
    between = region[value_at + len(VALUE) : key2_at]
    tail = region[value2_at + len(VALUE2) :]
    arg_open = whole_markers_suffix(common_suffix(name_to_key, between))
    arg_close = whole_markers_prefix(common_prefix(between, tail))
    name_close = name_to_key[: len(name_to_key) - len(arg_open)]
    after_args = tail[len(arg_close) :]
    section_open, call_open, call_close, section_close = _split_markers(
        region[:name_at], after_args
    )
    return ToolFormat(
        "tagged_args", section_open, section_close, call_open, name_close.strip(), call_close,
        arg_open=arg_open.strip(), arg_mid=key_mid.strip(), arg_close=arg_close.strip(),
    )  # fmt: skip
