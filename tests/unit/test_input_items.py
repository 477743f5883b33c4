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
