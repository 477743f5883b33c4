"""A forced tool choice (OpenAI's `required` or a named function, Anthropic's `any` or
`tool`) as what the neuron runs (pure): the JSON schema of one call to one of the offered
tools. The neuron constrains decoding to it (a llama.cpp grammar) and reads the output as
that call, whatever the model's own call format is: `{"name": …, "arguments": {…}}`, the
name first so the call can stream as it grows."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import msgspec

from cortex_gateway.errors import ApiError
from cortex_gateway.projection import Ask
from cortex_wire.outcomes import Code

# Where JSON Schema keeps definitions that `$ref`s point at ("#/$defs/X"): a tool's own are
# lifted to the root, where its arguments' references resolve once they are nested.
DEFINITIONS = ("$defs", "definitions")


# Where a named OpenAI tool_choice keeps the name: chat completions nest it in "function",
# the Responses API has it at the top.
CHAT_NAME = ("function", "name")
RESPONSES_NAME = ("name",)


def openai_forced(
    choice: str | dict[str, Any] | None, name_at: tuple[str, ...]
) -> tuple[bool, str | None]:
    """Whether an OpenAI `tool_choice` forces a call, and to which tool (None: any)."""
    if choice in (None, "auto", "none"):
        return False, None
    if choice == "required":
        return True, None
    if not isinstance(choice, dict) or not isinstance(choice.get("type"), str):
        raise ApiError.invalid(f"unknown tool_choice {choice!r}", param="tool_choice")
    if choice["type"] != "function":
        raise ApiError.of(
            Code.UNSUPPORTED_PARAMETER,
            f"tool_choice {choice['type']!r} is not supported; use 'required' or a function",
            param="tool_choice",
        )
    name: Any = choice
    for key in name_at:
        name = name.get(key) if isinstance(name, dict) else None
    if not isinstance(name, str) or not name:
        where = "tool_choice." + ".".join(name_at)
        raise ApiError.invalid(f"a function tool_choice names its tool at {where}", param=where)
    return True, name


def call_schema(tools: list[dict[str, Any]], name: str | None, param: str) -> dict[str, Any]:
    """The schema of one call to `name`, or to any of `tools` (OpenAI function format)
    when `name` is None. A choice with nothing to call is the client's error (`param`)."""
    functions = [t["function"] for t in tools if isinstance(t.get("function"), dict)]
    if not functions:
        raise ApiError.invalid("a forced tool choice needs at least one tool", param=param)
    if name is not None:
        functions = [f for f in functions if f.get("name") == name]
        if not functions:
            raise ApiError.invalid(f"tool_choice names {name!r}, which is not a tool", param=param)
    calls: list[dict[str, Any]] = []
    definitions: dict[str, dict[str, Any]] = {}
    for function in functions:
        arguments = _lifted(function, definitions)
        calls.append(
            {
                "type": "object",
                "properties": {"name": {"const": function["name"]}, "arguments": arguments},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    schema = calls[0] if len(calls) == 1 else {"anyOf": calls}
    return {**schema, **definitions}


# A function without parameters takes none (OpenAI's reading): its arguments are `{}`.
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


def _lifted(function: dict[str, Any], definitions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The function's parameters schema, its definitions moved into `definitions` (the
    root's): one that another tool already put there under its name, with other content,
    is renamed for this tool, and this tool's references follow it."""
    arguments = dict(function.get("parameters") or NO_PARAMETERS)
    arguments.setdefault("type", "object")
    renamed: dict[str, str] = {}
    for key in DEFINITIONS:
        own = arguments.pop(key, None)
        if not isinstance(own, dict):
            continue
        root = definitions.setdefault(key, {})
        placed = {}
        for def_name, definition in own.items():
            target = def_name
            if root.get(def_name, definition) != definition:
                target = f"{function['name']}.{def_name}"
                renamed[f"#/{key}/{def_name}"] = f"#/{key}/{target}"
            placed[target] = definition
        # The tool's definitions refer to each other (and to themselves) by the new names.
        root.update({name: _with_refs(d, renamed) for name, d in placed.items()})
    return _with_refs(arguments, renamed) if renamed else arguments


def _with_refs(value: Any, renamed: dict[str, str]) -> Any:
    """`value` with each `$ref` in `renamed` pointing at its new name (references deeper
    into a definition keep their tail)."""
    if isinstance(value, list):
        return [_with_refs(item, renamed) for item in value]
    if not isinstance(value, dict):
        return value
    out = {k: _with_refs(v, renamed) for k, v in value.items()}
    ref = out.get("$ref")
    if isinstance(ref, str):
        for old, new in renamed.items():
            if ref == old or ref.startswith(old + "/"):
                out["$ref"] = new + ref[len(old) :]
    return out


def forcing(ask: Ask, name: str | None, param: str) -> Ask:
    """`ask` with its reply forced to be one call (to `name`, or to any of its tools). The
    model writes it at once: with no thinking asked for, its thinking is switched off."""
    schema = call_schema(ask.tools, name, param)
    params = msgspec.structs.replace(ask.params, json_schema=schema)
    thinking = False if ask.thinking is None else ask.thinking
    return replace(ask, params=params, require_call=True, thinking=thinking)
