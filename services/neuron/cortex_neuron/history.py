"""A request's conversation and switches, as the model's chat template expects them (pure).

Hugging Face conventions: assistant `tool_calls` with arguments as an object (or as JSON
text, for templates that concatenate them), `tool` messages with `tool_call_id`, previous
reasoning in the field the template reads. Thinking switches and effort go to whichever
template variables the dialect found.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import msgspec

from cortex_neuron.dialect import Dialect
from cortex_wire.messages import ChatMessage, InferRequest

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def template_messages(
    messages: Sequence[ChatMessage], dialect: Dialect | None = None
) -> list[dict[str, Any]]:
    dialect = dialect or Dialect()
    rendered: list[dict[str, Any]] = []
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.reasoning and dialect.reasoning_field:
            item[dialect.reasoning_field] = message.reasoning
        if message.tool_calls:
            item["tool_calls"] = [
                {
                    "id": call_id(call.id, dialect),
                    "type": "function",
                    "function": {
                        "name": call.name,
                        "arguments": call.arguments
                        if dialect.arguments_as_text
                        else _arguments(call.arguments),
                    },
                }
                for call in message.tool_calls
            ]
        if message.tool_call_id:
            item["tool_call_id"] = call_id(message.tool_call_id, dialect)
        if message.name:
            item["name"] = message.name
        rendered.append(item)
    return rendered


def as_templates_read(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The conversation as chat templates expect it: OpenAI's `developer` messages as the
    `system` ones they are (templates know no other role for instructions), and each run of
    tool results in the order of the calls before it (clients send them as the tools
    finish; most templates pair a result with its call by position, not id)."""
    out = [
        msgspec.structs.replace(m, role="system") if m.role == "developer" else m for m in messages
    ]
    for index, message in enumerate(out):
        if message.role != "assistant" or not message.tool_calls:
            continue
        order = {call.id: position for position, call in enumerate(message.tool_calls)}
        end = index + 1
        while end < len(out) and out[end].role == "tool":
            end += 1
        results = out[index + 1 : end]
        out[index + 1 : end] = sorted(results, key=lambda r: order.get(r.tool_call_id, len(order)))
    return out


def fold_system(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The history with every system message after the first turn joined to the leading
    system prompt, for templates that take a system message only at the start."""
    lead = [m for m in messages[:1] if m.role == "system"]
    rest = messages[len(lead) :]
    later = [m.content for m in rest if m.role == "system"]
    if not later:
        return list(messages)
    system = "\n\n".join([*(m.content for m in lead), *later])
    return [ChatMessage(role="system", content=system), *(m for m in rest if m.role != "system")]


def call_id(original: str, dialect: Dialect) -> str:
    """A call id in the shape the template accepts; the same id always maps the same way,
    so a call and its result stay paired."""
    if dialect.call_id_style != "alnum9" or (len(original) == 9 and original.isalnum()):
        return original
    digest = hashlib.sha256(original.encode()).digest()
    return "".join(_ALNUM[b % len(_ALNUM)] for b in digest[:9])


# What a tool without parameters takes: none (OpenAI's reading of a function without any).
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


def template_tools(tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The request's tools as templates read them: each function with a description and
    parameters, which the APIs leave optional and templates use unguarded (one adds the
    description to a string; others walk the parameters' properties)."""
    if not tools:
        return None
    shaped = []
    for tool in tools:
        function = tool.get("function")
        if isinstance(function, dict):
            description = function.get("description")
            function = {
                **function,
                "description": description if isinstance(description, str) else "",
                "parameters": function.get("parameters") or NO_PARAMETERS,
            }
            tool = {**tool, "function": function}
        shaped.append(tool)
    return shaped


def template_variables(request: InferRequest, dialect: Dialect) -> dict[str, Any]:
    """Template variables: the dialect's thinking switches, effort and budget from the
    request, then the client's own chat_template_kwargs (which win)."""
    variables: dict[str, Any] = {}
    if request.thinking is not None:
        for name in dialect.thinking_switches:
            variables[name] = request.thinking
    if request.reasoning_effort and dialect.effort_variable:
        variables[dialect.effort_variable] = request.reasoning_effort
    if dialect.budget_variable:
        budget = 0 if request.thinking is False else request.params.reasoning_budget
        if budget is not None:
            variables[dialect.budget_variable] = budget
    variables.update(request.chat_template_kwargs)
    return variables


def _arguments(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, dict) else text
