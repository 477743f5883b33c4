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


def allowed_tools(choice: object, name_at: tuple[str, ...]) -> tuple[bool, list[str]] | None:
    """An OpenAI `allowed_tools` choice: whether it requires a call, and the tools it allows
    (chat nests them under `allowed_tools`; each names its tool where a function choice
    does); None for any other choice."""
    if not isinstance(choice, dict) or choice.get("type") != "allowed_tools":
        return None
    spec = choice.get("allowed_tools", choice) if name_at == CHAT_NAME else choice
    where = "tool_choice.allowed_tools" if name_at == CHAT_NAME else "tool_choice"
    mode = spec.get("mode") if isinstance(spec, dict) else None
    tools = spec.get("tools") if isinstance(spec, dict) else None
    if mode not in ("auto", "required"):
        raise ApiError.invalid(f"{where}.mode must be 'auto' or 'required'", param=f"{where}.mode")
    if not isinstance(tools, list):
        raise ApiError.invalid(f"{where}.tools must be a list of tools", param=f"{where}.tools")
    names = []
    for index, tool in enumerate(tools):
        name: Any = tool
        for key in name_at:
            name = name.get(key) if isinstance(name, dict) else None
        if not isinstance(name, str) or not name:
            at = f"{where}.tools[{index}]"
            raise ApiError.invalid(f"{at} names its function at {'.'.join(name_at)}", param=at)
        names.append(name)
    return mode == "required", names


def allowing(ask: Ask, choice: str | dict[str, Any] | None, name_at: tuple[str, ...]) -> Ask:
    """`ask` as its tool choice has it: forced (to one tool or any), limited to the
    tools `allowed_tools` names (and forced to one of them, if it requires a call), or
    as it is."""
    allowed = allowed_tools(choice, name_at)
    if allowed is None:
        forced, name = openai_forced(choice, name_at)
        return forcing(ask, name, "tool_choice") if forced else ask
    required, names = allowed
    offered = {t["function"].get("name") for t in ask.tools if isinstance(t.get("function"), dict)}
    unknown = [name for name in names if name not in offered]
    if unknown:
        raise ApiError.invalid(
            f"tool_choice allows {unknown[0]!r}, which is not a tool", param="tool_choice"
        )
    limited = replace(ask, callable=names)
    return forcing(limited, None, "tool_choice") if required else limited


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
    if choice["type"] == "allowed_tools":
        allowed = allowed_tools(choice, name_at)
        return (allowed[0], None) if allowed else (False, None)
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


def check_forced(names: set[str], name: str | None, param: str) -> None:
    """A forced choice of the tools `names`, of `name` among them (None: any): one with
    nothing to call is the client's error (`param`)."""
    if not names:
        raise ApiError.invalid("a forced tool choice needs at least one tool", param=param)
    if name is not None and name not in names:
        raise ApiError.invalid(f"tool_choice names {name!r}, which is not a tool", param=param)


def call_schema(tools: list[dict[str, Any]], name: str | None, param: str) -> dict[str, Any]:
    """The schema of one call to `name`, or to any of `tools` (OpenAI function format)
    when `name` is None (check_forced refuses a choice with nothing to call)."""
    functions = [t["function"] for t in tools if isinstance(t.get("function"), dict)]
    check_forced({f.get("name") for f in functions}, name, param)
    if name is not None:
        functions = [f for f in functions if f.get("name") == name]
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
    callable_tools = [
        t for t in ask.tools
        if ask.callable is None or (t.get("function") or {}).get("name") in ask.callable
    ]  # fmt: skip
    schema = call_schema(callable_tools, name, param)
    params = msgspec.structs.replace(ask.params, json_schema=schema)
    thinking = False if ask.thinking is None else ask.thinking
    return replace(ask, params=params, require_call=True, thinking=thinking)
