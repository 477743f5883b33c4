"""Message-prefix digests: the same conversation start gives the same digests, whatever
follows; anything that shapes the rendered prompt changes them."""

import msgspec

from cortex_wire.messages import ChatMessage, InferRequest
from cortex_wire.prefixes import prefix_digests


def request(*contents: str, **fields: object) -> InferRequest:
    roles = ["system", "user", "assistant", "user"]
    messages = [ChatMessage(role=roles[i % 4], content=c) for i, c in enumerate(contents)]
    return InferRequest(request_id="r", model="m", stream_subject="s", messages=messages,
                        **fields)  # type: ignore[arg-type]  # fmt: skip


def test_a_next_turn_shares_every_digest_of_the_turn_before() -> None:
    first = prefix_digests(request("sys", "hi"))
    second = prefix_digests(request("sys", "hi", "hello", "more"))
    assert len(first) == 2 and second[:2] == first and len(set(second)) == 4


def test_what_shapes_the_prompt_changes_the_digests() -> None:
    base = prefix_digests(request("sys", "hi"))
    assert prefix_digests(request("sys", "ho"))[0] == base[0]  # only the changed message on
    assert prefix_digests(request("sys", "ho"))[1] != base[1]
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert prefix_digests(request("sys", "hi", tools=tools))[0] != base[0]
    assert prefix_digests(request("sys", "hi", thinking=True))[0] != base[0]
    raw = msgspec.structs.replace(request("x"), messages=None, prompt="raw")
    assert prefix_digests(raw) == []
