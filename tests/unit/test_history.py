"""A system message after the first turn, for templates that take one only at the start."""

from cortex_neuron.history import fold_system
from cortex_wire.messages import ChatMessage


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
