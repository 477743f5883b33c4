"""The schema a forced tool choice constrains decoding to (pure), and that llama.cpp's
converter reads it as meant: definitions of the same name from two tools stay apart, and a
function without parameters takes none."""

from __future__ import annotations

import json

import llama_cpp
import pytest

from cortex_gateway.errors import ApiError
from cortex_gateway.forced_calls import CHAT_NAME, call_schema, openai_forced


def tool(name: str, parameters: dict | None = None) -> dict:
    function: dict = {"name": name}
    if parameters is not None:
        function["parameters"] = parameters
    return {"type": "function", "function": function}


def item_tool(name: str, field: str, kind: str) -> dict:
    return tool(name, {
        "type": "object", "properties": {"item": {"$ref": "#/$defs/Item"}}, "required": ["item"],
        "$defs": {"Item": {"type": "object", "properties": {field: {"type": kind}},
                           "required": [field]}},
    })  # fmt: skip


def test_definitions_of_one_name_from_two_tools_stay_apart() -> None:
    tools = [item_tool("get_weather", "city", "string"), item_tool("get_price", "price", "integer")]
    schema = call_schema(tools, None, "tool_choice")
    weather, price = schema["anyOf"]
    defs = schema["$defs"]
    weather_ref = weather["properties"]["arguments"]["properties"]["item"]["$ref"]
    price_ref = price["properties"]["arguments"]["properties"]["item"]["$ref"]
    assert weather_ref != price_ref
    assert defs[weather_ref.rsplit("/", 1)[-1]]["properties"] == {"city": {"type": "string"}}
    assert defs[price_ref.rsplit("/", 1)[-1]]["properties"] == {"price": {"type": "integer"}}
    grammar = llama_cpp.LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    assert "city" in grammar._grammar and "price" in grammar._grammar


def test_the_same_definition_from_two_tools_is_kept_once() -> None:
    schema = call_schema([item_tool("a", "city", "string"), item_tool("b", "city", "string")],
                         None, "tool_choice")  # fmt: skip
    assert list(schema["$defs"]) == ["Item"]


def test_a_function_without_parameters_takes_no_arguments() -> None:
    schema = call_schema([tool("now")], None, "tool_choice")
    assert schema["properties"]["arguments"] == {"type": "object", "properties": {}}
    grammar = llama_cpp.LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    assert 'arguments ::= "{" space  "}" space' in grammar._grammar


def test_a_named_choice_holds_that_tool_only() -> None:
    schema = call_schema([tool("a", {}), tool("b", {})], "b", "tool_choice")
    assert schema["properties"]["name"] == {"const": "b"}


@pytest.mark.parametrize(
    ("choice", "forced"),
    [(None, (False, None)), ("auto", (False, None)), ("none", (False, None)),
     ("required", (True, None)), ({"type": "function", "function": {"name": "x"}}, (True, "x"))],
)  # fmt: skip
def test_openai_choices(choice, forced) -> None:
    assert openai_forced(choice, CHAT_NAME) == forced


@pytest.mark.parametrize("choice", ["always", {"type": "function"}, {"type": "allowed_tools"}, 3])
def test_openai_choices_that_cannot_be_read_are_refused(choice) -> None:
    with pytest.raises(ApiError) as refused:
        openai_forced(choice, CHAT_NAME)
    assert refused.value.status == 400 and (refused.value.param or "").startswith("tool_choice")


def test_a_renamed_definition_that_refers_to_itself_follows_its_new_name() -> None:
    leaf = tool("a", {"type": "object", "properties": {"n": {"$ref": "#/$defs/Node"}},
                      "$defs": {"Node": {"type": "string"}}})  # fmt: skip
    tree = tool("b", {"type": "object", "properties": {"n": {"$ref": "#/$defs/Node"}},
                      "$defs": {"Node": {"type": "object", "properties": {
                          "child": {"$ref": "#/$defs/Node"}}}}})  # fmt: skip
    defs = call_schema([leaf, tree], None, "tool_choice")["$defs"]
    assert defs["Node"] == {"type": "string"}
    assert defs["b.Node"]["properties"]["child"] == {"$ref": "#/$defs/b.Node"}
