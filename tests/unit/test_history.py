"""The conversation as templates read it: a system message after the first turn, for
templates that take one only at the start; developer messages; tool results' order."""

from cortex_neuron.history import as_templates_read, fold_system
from cortex_wire.messages import ChatMessage, ToolCall


def msg(role: str, content: str) -> ChatMessage:
    return ChatMessage(role=role, content=content)


def test_later_system_messages_join_the_leading_one_in_order() -> None:
    history = [msg("system", "lead"), msg("user", "u1"), msg("system", "s1"),
               msg("assistant", "a1"), msg("system", "s2"), msg("user", "u2")]  # fmt: skip
    assert fold_system(history) == [
        msg("system", "lead\n\ns1\n\ns2"), msg("user", "u1"), msg("assistant", "a1"),
        msg("user", "u2"),
    ]  # fmt: skip


def test_without_a_leading_system_message_one_is_made() -> None:
    history = [msg("user", "u1"), msg("system", "s1")]
    assert fold_system(history) == [msg("system", "s1"), msg("user", "u1")]


def test_a_history_without_later_system_messages_is_unchanged() -> None:
    history = [msg("system", "lead"), msg("user", "u1")]
    assert fold_system(history) == history


def test_developer_messages_reach_templates_as_system_messages() -> None:
    messages = [msg("developer", "Be brief."), msg("user", "hi")]
    assert as_templates_read(messages) == [msg("system", "Be brief."), msg("user", "hi")]


def test_tool_results_follow_the_order_of_their_calls() -> None:
    calls = [ToolCall(id=i, name=n, arguments="{}") for i, n in (("a", "Bash"), ("b", "Read"))]

    def result(content: str, call: str) -> ChatMessage:
        return ChatMessage(role="tool", content=content, tool_call_id=call)

    messages = [
        msg("user", "go"),
        ChatMessage(role="assistant", content="", tool_calls=calls),
        result("read's", "b"),  # as the tools finished
        result("unknown", "zzz"),
        result("bash's", "a"),
        msg("user", "and now?"),
        result("stray", "a"),  # not after the calls: left as it is
    ]
    contents = [m.content for m in as_templates_read(messages)]
    assert contents == ["go", "", "bash's", "read's", "unknown", "and now?", "stray"]
