"""What a stored response keeps for the next turn: the conversation so far, this
request's input and its output as the assistant turn, instructions aside."""

from __future__ import annotations

import msgspec

from cortex_gateway.events import Answer, CallOpened, Finished, Reasoning, Stop, Text
from cortex_gateway.metrics import GatewayMetrics, RequestTrace
from cortex_gateway.openai_responses import (
    ResponsesRequest,
    chat_messages,
    output_messages,
    stored,
)
from cortex_gateway.projection import CallInfo
from cortex_gateway.tool_calls import ParsedCall
from cortex_wire.messages import ChatMessage, ToolCall, Usage


def request(**fields: object) -> ResponsesRequest:
    return msgspec.convert({"model": "m", **fields}, ResponsesRequest)


def test_the_next_turn_gets_instructions_then_history_then_input() -> None:
    history = [ChatMessage(role="user", content="a"), ChatMessage(role="assistant", content="b")]
    messages = chat_messages(request(input="c", instructions="be brief"), history)
    assert [(m.role, m.content) for m in messages] == [
        ("system", "be brief"), ("user", "a"), ("assistant", "b"), ("user", "c"),
    ]  # fmt: skip


def test_the_output_goes_back_as_one_assistant_turn_with_its_calls() -> None:
    answer = Answer()
    call = ParsedCall("call_1", "get_weather", '{"city": "Paris"}')
    for event in (Reasoning("think"), Text("Let me look."), CallOpened(call),
                  Finished(Stop.TOOL_CALLS, Usage())):  # fmt: skip
        answer.add(event)
    (message,) = output_messages(answer)
    assert (message.role, message.content, message.reasoning) == (
        "assistant", "Let me look.", "think",
    )  # fmt: skip
    assert message.tool_calls == [ToolCall(id="call_1", name="get_weather",
                                           arguments='{"city": "Paris"}')]  # fmt: skip


def test_a_stored_response_keeps_the_conversation_without_instructions() -> None:
    answer = Answer()
    answer.add(Text("Hi!"))
    answer.add(Finished(Stop.END, Usage()))
    trace = RequestTrace(GatewayMetrics(), "m", "responses")
    info = CallInfo(request_id="resp_x", model="m", trace=trace)
    history = [ChatMessage(role="user", content="earlier")]
    record = stored(answer, info, request(input="hello", instructions="sys"), history)
    assert record.id == "resp_x" and record.body["id"] == "resp_x"
    assert [(m.role, m.content) for m in record.conversation] == [
        ("user", "earlier"), ("user", "hello"), ("assistant", "Hi!"),
    ]  # fmt: skip
