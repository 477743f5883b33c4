"""Parsing the text of a tool-call section into calls, per tool format (pure).

Each parser takes the section's text (between its markers) and returns the calls, or None
when the text is not what the format says — the caller then keeps it as text, markers and
all, so nothing the model wrote is lost.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cortex_neuron.dialect.model import ToolFormat

_DECODER = json.JSONDecoder()
# Where a call's name may sit in a JSON call object, and its arguments.
NAME_FIELDS = ("name", "tool_name", "function_name")
ARGUMENT_FIELDS = ("arguments", "parameters", "args", "input")


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: str  # JSON text of an object


def pattern(marker: str) -> str:
    """A marker as a regex: whitespace runs match any whitespace, digit runs any digits,
    and an attribute's value any value (`string="true"` is `string="false"` too)."""
    out = []
    for part in re.split(r'(\s+|\d+|="[^"]*")', marker):
        if not part:
            continue
        if part.isspace():
            out.append(r"\s*")
        elif part.isdigit():
            out.append(r"\d+")
        elif part.startswith('="'):
            out.append(r'="[^"]*"')
        else:
            out.append(re.escape(part))
    return "".join(out)


def parse_section(
    fmt: ToolFormat, body: str, schemas: Mapping[str, Mapping[str, Any]] | None = None
) -> list[ParsedCall] | None:
    if fmt.kind == "json":
        return parse_json_calls(body, tuple(schemas or ()))
    if fmt.kind == "python":
        return parse_python_calls(body)
    if fmt.kind == "tagged_json":
        return _parse_tagged(fmt, body, None)
    return _parse_tagged(fmt, body, schemas or {})


# --- JSON -------------------------------------------------------------------------------


def _call_of(value: Any, tool_names: tuple[str, ...] = ()) -> ParsedCall | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):  # OpenAI shape: {"function": {...}}
        value = {**value, **value["function"]}
    name = next((value[f] for f in NAME_FIELDS if isinstance(value.get(f), str)), "")
    if not name and len(value) == 1 and next(iter(value)) in tool_names:
        ((name, by_name),) = value.items()  # {"NAME": {arguments}}
        return _call(name, by_name)
    if not name:
        return None
    arguments: Any = next((value[f] for f in ARGUMENT_FIELDS if f in value), {})
    return _call(name, arguments)


def _call(name: str, arguments: Any) -> ParsedCall | None:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ParsedCall(name.strip(), json.dumps(arguments, ensure_ascii=False))


def parse_json_calls(body: str, tool_names: tuple[str, ...] = ()) -> list[ParsedCall] | None:
    """One or more JSON call objects (or arrays of them), separated by whitespace or commas.
    A call is `{"name": …, "arguments": {…}}` (or the other field names), or `{"NAME":
    {…}}` for one of the request's `tool_names`."""
    calls: list[ParsedCall] = []
    at, body = 0, body.strip()
    while at < len(body):
        if body[at] in " \t\r\n,;":
            at += 1
            continue
        try:
            value, at = _DECODER.raw_decode(body, at)
        except ValueError:
            return None
        for item in value if isinstance(value, list) else [value]:
            call = _call_of(item, tool_names)
            if call is None:
                return None
            calls.append(call)
    return calls or None


# --- python -----------------------------------------------------------------------------


def parse_python_calls(body: str) -> list[ParsedCall] | None:
    """Call expressions with keyword arguments of literal values: `name(k="v")`, a list of
    them, or `name.call(k="v")`."""
    try:
        tree = ast.parse(body.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError):
        return None
    nodes = tree.elts if isinstance(tree, ast.List | ast.Tuple) else [tree]
    calls: list[ParsedCall] = []
    for node in nodes:
        if not isinstance(node, ast.Call) or node.args:
            return None
        function = node.func
        if isinstance(function, ast.Attribute) and function.attr == "call":
            function = function.value  # name.call(...)
        if not isinstance(function, ast.Name) or any(k.arg is None for k in node.keywords):
            return None
        try:
            arguments = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
            json.dumps(arguments)  # literals JSON cannot hold (sets, bytes) are not a call
        except (ValueError, TypeError, SyntaxError, RecursionError):
            return None
        call = _call(function.id, arguments)
        if call is None:
            return None
        calls.append(call)
    return calls or None


# --- tagged -----------------------------------------------------------------------------


def _parse_tagged(
    fmt: ToolFormat, body: str, schemas: Mapping[str, Mapping[str, Any]] | None
) -> list[ParsedCall] | None:
    """Calls written as `call_open NAME name_close ARGS call_close`, one after another.
    `schemas` None: ARGS is a JSON object; else KEY/VALUE pairs between arg markers."""
    calls: list[ParsedCall] = []
    rest = body.strip()
    while rest:
        rest = rest[len(repeated_opener(fmt, rest)) :]
        match = re.match(r"\s*" + pattern(fmt.call_open), rest) if fmt.call_open else None
        if fmt.call_open and match is None:
            return None
        rest = rest[match.end() :] if match else rest
        name, rest = name_of(fmt, rest)
        if name is None:
            return None
        if schemas is None:
            arguments, rest = _json_arguments(rest, fmt.string_quote)
        else:
            arguments, rest = _tagged_arguments(fmt, rest, schemas.get(name, {}))
        if arguments is None:
            return None
        if fmt.call_close:
            closing = re.match(r"\s*" + pattern(fmt.call_close), rest)
            if closing is not None:
                rest = rest[closing.end() :]
        rest = rest.strip()
        call = _call(name, arguments)
        if call is None:
            return None
        calls.append(call)
    return calls or None


def repeated_opener(fmt: ToolFormat, text: str) -> str:
    """A section that runs to the end of the generation has its opener written again
    before each further call (`[TOOL_CALLS]a[ARGS]{…}[TOOL_CALLS]b[ARGS]{…}`): that
    opener at the start of `text`, or ""."""
    if not fmt.section_open or fmt.section_close:
        return ""
    again = re.match(r"\s*" + pattern(fmt.section_open), text)
    return again.group(0) if again else ""


def name_of(fmt: ToolFormat, text: str) -> tuple[str | None, str]:
    """The call's name (from `prefix.NAME:INDEX` ids too) and the text after it."""
    if fmt.id_before:  # skip the id written before the name
        after_id = re.search(pattern(fmt.id_before), text)
        if after_id is None:
            return None, text
        text = text[after_id.end() :]
    ends = [pattern(m) for m in (fmt.id_open, fmt.name_close) if m]
    if fmt.arg_open:
        ends.append(pattern(fmt.arg_open))
    if not ends:
        ends = [r"(?=[{\s])"]
    match = re.match(r"\s*(.+?)\s*(?:" + "|".join(ends) + ")", text, re.S)
    if match is None:
        return None, text
    name, rest = match.group(1), text[match.end() :]
    if fmt.id_open:  # the id sits between name and arguments: skip it
        closing = re.search(pattern(fmt.id_close), rest)
        if closing is None:
            return None, text
        rest = rest[closing.end() :]
    elif fmt.arg_open and re.match(pattern(fmt.arg_open), text[match.end(1) :].lstrip()):
        rest = text[match.end(1) :]  # the arg marker is the next argument's, not consumed
    if fmt.name_in_id or re.fullmatch(r"[\w\-]+\.[\w\-.]+:\d+", name):
        name = name.split(":")[0].rsplit(".", 1)[-1] if ":" in name else name
    return (name if name and "\n" not in name else None), rest


def _json_arguments(text: str, quote: str = "") -> tuple[Any, str]:
    start = text.find("{")
    if start < 0 or text[:start].strip("` \n\tjson"):
        return None, text
    if quote:
        found = relaxed_object(text[start:], quote)
        return (None, text) if found is None else (found[0], text[start + found[1] :])
    try:
        value, end = _DECODER.raw_decode(text, start)
    except ValueError:
        return None, text
    return value, text[end:]


def relaxed_object(text: str, quote: str) -> tuple[Any, int] | None:
    """An object written with bare keys and a `quote` marker around its strings
    (`{city:<|"|>Paris<|"|>,days:3}`) read as JSON: (its value, where it ends in `text`),
    or None."""
    out: list[str] = []
    stack: list[str] = []
    at, expect_key = 0, False
    while at < len(text):
        char = text[at]
        if text.startswith(quote, at):
            end = text.find(quote, at + len(quote))
            if end < 0:
                return None
            out.append(json.dumps(text[at + len(quote) : end], ensure_ascii=False))
            at, expect_key = end + len(quote), False
            continue
        if char == '"':
            try:
                _, end = _DECODER.raw_decode(text, at)  # a JSON string, whole
            except ValueError:
                return None
            out.append(text[at:end])
            at, expect_key = end, False
            continue
        bare = re.match(r"[A-Za-z_][\w\-]*", text[at:]) if expect_key else None
        if bare is not None:
            out.append(json.dumps(bare.group(0)))
            at, expect_key = at + bare.end(), False
            continue
        if char in "{[":
            stack.append(char)
            expect_key = char == "{"
        elif char in "}]":
            if not stack:
                return None
            stack.pop()
        elif char == ",":
            expect_key = bool(stack) and stack[-1] == "{"
        out.append(char)
        at += 1
        if not stack:
            break
    if stack or not out or out[0] != "{":
        return None
    try:
        return json.loads("".join(out)), at
    except ValueError:
        return None


def _tagged_arguments(
    fmt: ToolFormat, text: str, schema: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, str]:
    properties = schema.get("properties", {}) if isinstance(schema, Mapping) else {}
    arguments: dict[str, Any] = {}
    key_re = re.compile(
        r"\s*" + pattern(fmt.arg_open) + r"(.*?)" + pattern(fmt.arg_mid) + r"(.*?)"
        + pattern(fmt.arg_close), re.S,
    )  # fmt: skip
    while True:
        match = key_re.match(text)
        if match is None:
            return arguments, text
        key, raw = match.group(1).strip(), match.group(2)
        arguments[key] = argument_value(raw, properties.get(key))
        text = text[match.end() :]


def argument_value(raw: str, schema: Any) -> Any:
    """A tagged argument: a string stays a string (its one surrounding newline dropped);
    anything else is read as JSON when it parses."""
    value = raw[1:] if raw.startswith("\n") else raw
    value = value[:-1] if value.endswith("\n") else value
    declared = schema.get("type") if isinstance(schema, Mapping) else None
    if declared == "string":
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return value if isinstance(parsed, str) and declared is None else parsed
