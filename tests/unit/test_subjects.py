import pytest

from cortex_wire import subjects

HOSTILE = [
    "plain-model_1",
    "qwen3.5:7b",
    "a.b.c",
    "*",
    ">",
    "with space",
    "crlf\r\nPUB x 1",
    "tab\tnull\x00",
    "üñíçødé-模型",
    "~tilde~",
    "",
    "x" * 10_000,
]


@pytest.mark.parametrize("text", HOSTILE)
def test_encoded_token_is_one_safe_token_and_round_trips(text: str) -> None:
    token = subjects.encode_token(text)
    assert token
    assert not any(c in token for c in ".*> \t\r\n\x00")
    assert token.isascii()
    assert subjects.decode_token(token) == text


@pytest.mark.parametrize("node", HOSTILE)
def test_node_names_never_change_subject_shape(node: str) -> None:
    for subject in (
        subjects.heartbeat(node), subjects.infer(node), subjects.control(node),
        subjects.embed(node), subjects.tokenize(node), subjects.vocab(node),
    ):  # fmt: skip
        assert subject.startswith("cortex.neuron.")
        assert len(subject.split(".")) == 4
        assert subjects.decode_token(subject.split(".")[2]) == node


def test_stream_and_event_subjects_have_fixed_depth() -> None:
    assert len(subjects.stream("a.b>*").split(".")) == 3
    assert len(subjects.model_event("n.1", "m.*").split(".")) == 5


def test_distinct_texts_never_collide() -> None:
    tokens = {subjects.encode_token(t) for t in HOSTILE}
    assert len(tokens) == len(set(HOSTILE))


@pytest.mark.parametrize("bad", ["~zz", "~4", "a.b", "a b"])
def test_decode_rejects_tokens_it_could_not_have_made(bad: str) -> None:
    with pytest.raises(ValueError):
        subjects.decode_token(bad)
