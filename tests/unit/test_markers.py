from hypothesis import given
from hypothesis import strategies as st

from cortex_neuron.markers import (
    REASONING_PAIRS,
    TOOL_CALL_PAIRS,
    MarkerPair,
    ReasoningRouter,
    find_marker_pair,
    prompt_opens_reasoning,
)
from cortex_neuron.text_stream import TextAssembler

THINK = MarkerPair("<think>", "</think>", 100, 101)


def vocab_tokenizer(single_tokens: dict[str, int]):
    """A tokenizer where listed strings are one token and anything else one token per char."""

    def tokenize(text: str) -> list[int]:
        return [single_tokens[text]] if text in single_tokens else [ord(c) for c in text]

    return tokenize


def test_first_complete_pair_in_probe_order_wins() -> None:
    tokenize = vocab_tokenizer({"[THINK]": 7, "[/THINK]": 8, "<thought>": 9, "</thought>": 10})
    pair = find_marker_pair(tokenize, REASONING_PAIRS)
    assert pair == MarkerPair("[THINK]", "[/THINK]", 7, 8)


def test_a_half_pair_does_not_count() -> None:
    tokenize = vocab_tokenizer({"<think>": 5, "<reasoning>": 6, "</reasoning>": 7})
    assert find_marker_pair(tokenize, REASONING_PAIRS) == MarkerPair(
        "<reasoning>", "</reasoning>", 6, 7
    )
    assert find_marker_pair(vocab_tokenizer({"<think>": 5}), REASONING_PAIRS) is None


def test_no_markers_means_no_pair_and_plain_text_routing() -> None:
    assert find_marker_pair(vocab_tokenizer({}), REASONING_PAIRS) is None
    router = ReasoningRouter(None, in_reasoning=True)
    assert [router.route(t) for t in (1, 100, 2)] == ["text", "text", "text"]


def test_tool_call_pair_is_detected_the_same_way() -> None:
    tokenize = vocab_tokenizer({"<tool_call>": 3, "</tool_call>": 4})
    assert find_marker_pair(tokenize, TOOL_CALL_PAIRS) == MarkerPair(
        "<tool_call>", "</tool_call>", 3, 4
    )


def test_router_state_machine_swallows_markers() -> None:
    router = ReasoningRouter(THINK)
    routed = [router.route(t) for t in (1, 100, 2, 3, 101, 4, 100, 5)]
    assert routed == ["text", None, "reasoning", "reasoning", None, "text", None, "reasoning"]


def test_prompt_that_ends_inside_an_open_marker_starts_in_reasoning() -> None:
    assert prompt_opens_reasoning([1, 2, 100, 10], THINK)
    assert not prompt_opens_reasoning([1, 100, 5, 101, 10], THINK)
    assert not prompt_opens_reasoning([1, 2, 3], THINK)
    assert not prompt_opens_reasoning([100], None)
    router = ReasoningRouter(THINK, in_reasoning=True)
    assert [router.route(t) for t in (5, 101, 6)] == ["reasoning", None, "text"]


# --- property: however the byte pieces are chunked, the channels read the same ------------

PIECES = [b"a", "é".encode(), "☃".encode(), b" ", "日本".encode()]


def route_pieces(tokens: list[tuple[int, bytes]], cuts: list[int]) -> tuple[str, str]:
    """Route token ids, split each piece's bytes at `cuts`, feed per channel; return texts."""
    router = ReasoningRouter(THINK)
    out = {"text": TextAssembler([]), "reasoning": TextAssembler([])}
    texts = {"text": "", "reasoning": ""}
    for index, (token, piece) in enumerate(tokens):
        channel = router.route(token)
        if channel is None:
            continue
        cut = cuts[index % len(cuts)] % (len(piece) + 1)
        for part in (piece[:cut], piece[cut:]):
            text, _ = out[channel].feed(part)
            texts[channel] += text
    for name, assembler in out.items():
        texts[name] += assembler.finish()
    return texts["reasoning"], texts["text"]


token_stream = st.lists(
    st.one_of(
        st.sampled_from([(100, b""), (101, b"")]),
        st.builds(lambda p: (1, p), st.sampled_from(PIECES)),
    ),
    max_size=40,
)


@given(token_stream, st.lists(st.integers(0, 8), min_size=1, max_size=10))
def test_every_chunking_yields_the_same_reasoning_and_text(tokens, cuts) -> None:
    assert route_pieces(tokens, cuts) == route_pieces(tokens, [0])
