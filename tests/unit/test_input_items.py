"""The input items a stored response lists, and their pages."""

from __future__ import annotations

import msgspec
import pytest

from cortex_gateway.errors import ApiError
from cortex_gateway.openai_responses import ResponsesRequest, input_items_page, listed_inputs


def test_text_input_is_one_user_message_item_with_an_id() -> None:
    (item,) = listed_inputs(msgspec.convert({"model": "m", "input": "hi"}, ResponsesRequest))
    assert item["type"] == "message" and item["role"] == "user"
    assert item["content"] == [{"type": "input_text", "text": "hi"}]
    assert str(item["id"]).startswith("msg_") and item["status"] == "completed"


def test_pages_go_newest_first_unless_asked_and_continue_after_an_id() -> None:
    items = [{"id": f"i{n}"} for n in range(5)]
    first = input_items_page(items, "desc", 2, "")
    assert [i["id"] for i in first["data"]] == ["i4", "i3"] and first["has_more"]
    rest = input_items_page(items, "desc", 10, first["last_id"])
    assert [i["id"] for i in rest["data"]] == ["i2", "i1", "i0"] and not rest["has_more"]
    assert input_items_page(items, "asc", 1, "")["first_id"] == "i0"
    with pytest.raises(ApiError):
        input_items_page(items, "sideways", 1, "")
    with pytest.raises(ApiError):
        input_items_page(items, "asc", 1, "nope")


def test_a_function_output_of_parts_is_its_text() -> None:
    """The API takes a function's output as parts too: text parts are the text, an image
    or a file is named in its place (the model reads text only); listed back as sent."""
    from cortex_gateway.openai_responses import input_messages

    output = [{"type": "input_text", "text": "22 C"},
              {"type": "input_image", "image_url": "data:image/png;base64,iVBO"}]  # fmt: skip
    body = {"model": "m", "input": [
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": output},
    ]}  # fmt: skip
    request = msgspec.convert(body, ResponsesRequest)
    [_, result] = input_messages(request)
    assert (result.role, result.tool_call_id) == ("tool", "c1")
    assert result.content == "22 C[image omitted: the model reads text only]"
    listed = listed_inputs(request)[1]["output"]
    assert [part["type"] for part in listed] == ["input_text", "input_image"]
    audio = {**body, "input": [{**body["input"][1], "output": [{"type": "input_audio"}]}]}
    with pytest.raises(ApiError, match="'input_audio' is not supported") as refused:
        input_messages(msgspec.convert(audio, ResponsesRequest))
    assert refused.value.param == "input[0].output[0].type"
