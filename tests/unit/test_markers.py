from cortex_neuron.markers import (
    REASONING_PAIRS,
    TOOL_CALL_PAIRS,
    MarkerPair,
    find_marker_pair,
)


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


def test_no_markers_means_no_pair() -> None:
    assert find_marker_pair(vocab_tokenizer({}), REASONING_PAIRS) is None


def test_tool_call_pair_is_detected_the_same_way() -> None:
    tokenize = vocab_tokenizer({"<tool_call>": 3, "</tool_call>": 4})
    assert find_marker_pair(tokenize, TOOL_CALL_PAIRS) == MarkerPair(
        "<tool_call>", "</tool_call>", 3, 4
    )
