"""Log probabilities: computed from logits on the neuron, written per API on the gateway."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cortex_gateway.logprobs import TextOffsets, completion_logprobs, token_entries
from cortex_neuron.channel import PromptScored, TextChunk
from cortex_neuron.frames import coalesce
from cortex_neuron.logprobs import scores_at, token_logprob
from cortex_neuron.slots import SlotView, plan_fresh
from cortex_wire.messages import Delta, TokenLogprob, TopLogprob


def test_scores_are_log_softmax_of_the_raw_logits() -> None:
    logits = np.array([1.0, 3.0, 3.0, -2.0], dtype=np.float32)
    norm = math.log(sum(math.exp(x) for x in logits))
    logprob, top = scores_at(logits, 0, 3)
    assert logprob == pytest.approx(1.0 - norm)
    # Best first; a tie goes to the lower id.
    assert top == [(1, pytest.approx(3 - norm)), (2, pytest.approx(3 - norm)),
                   (0, pytest.approx(1 - norm))]  # fmt: skip
    assert scores_at(logits, 3, 0)[1] == []
    assert len(scores_at(logits, 3, 10)[1]) == 4  # never more than the vocabulary
    # Far apart logits keep their digits (computed in float64).
    assert scores_at(np.array([0.0, 100.0], dtype=np.float32), 0, 0)[0] == pytest.approx(-100.0)


def test_a_token_is_reported_with_its_bytes_even_when_they_are_not_text() -> None:
    pieces = {1: "é".encode(), 2: b"\xe2\x82", 3: b"<|end|>"}
    entry = token_logprob(pieces.__getitem__, 2, -0.5, [(1, -0.1), (3, -2.0)])
    assert entry.bytes == [0xE2, 0x82] and entry.token == "\ufffd"
    assert [t.token for t in entry.top] == ["é", "<|end|>"]


def _scored(token: str, logprob: float | None, *top: tuple[str, float]) -> TokenLogprob:
    return TokenLogprob(
        token=token, logprob=logprob, bytes=list(token.encode()),
        top=[TopLogprob(token=t, logprob=lp, bytes=list(t.encode())) for t, lp in top],
    )  # fmt: skip


def test_text_frames_carry_the_scores_of_their_tokens_and_the_prompt_goes_alone() -> None:
    hello, comma = _scored("Hello", -0.1), _scored(",", -0.2)
    prompt = (_scored("Hi", None),)
    frames = coalesce(
        [PromptScored(prompt), TextChunk("Hello", 1, logprobs=(hello,)),
         TextChunk(",", 1, logprobs=(comma,))],
        first_seq=0,
    )  # fmt: skip
    assert frames == [
        Delta(seq=0, prompt_logprobs=list(prompt)),
        Delta(seq=1, text="Hello,", tokens=2, logprobs=[hello, comma]),
    ]


def test_legacy_completions_logprobs_are_parallel_arrays_with_offsets() -> None:
    entries = [_scored("Say", None), _scored(" hi", -1.5, (" yo", -0.5)), _scored("!", -0.1)]
    body = completion_logprobs(entries, 10)
    assert body == {
        "tokens": ["Say", " hi", "!"],
        "token_logprobs": [None, -1.5, -0.1],
        # The chosen token is always among the alternatives (the API lists it).
        "top_logprobs": [None, {" yo": -0.5, " hi": -1.5}, {"!": -0.1}],
        "text_offset": [10, 13, 16],
    }


def test_offsets_count_characters_of_the_text_the_bytes_spell() -> None:
    """A character split over two tokens starts at the first and counts once."""
    split = [
        TokenLogprob(token="a", logprob=-1.0, bytes=[97]),
        TokenLogprob(token="\ufffd", logprob=-1.0, bytes=[0xC3]),
        TokenLogprob(token="\ufffd", logprob=-1.0, bytes=[0xA9]),
        TokenLogprob(token="b", logprob=-1.0, bytes=[98]),
    ]
    assert completion_logprobs(split, 0)["text_offset"] == [0, 1, 1, 2]  # "aéb"
    offsets = TextOffsets(5)  # a stream goes on where its last chunk ended
    assert completion_logprobs(split[:2], offsets)["text_offset"] == [5, 6]
    assert completion_logprobs(split[2:], offsets)["text_offset"] == [6, 7]


def test_chat_logprobs_are_objects_with_bytes_and_alternatives() -> None:
    (entry,) = token_entries([_scored("é", -0.25, ("é", -0.25), ("e", -2.0))])
    assert entry == {
        "token": "é", "logprob": -0.25, "bytes": [0xC3, 0xA9],
        "top_logprobs": [{"token": "é", "logprob": -0.25, "bytes": [0xC3, 0xA9]},
                         {"token": "e", "logprob": -2.0, "bytes": [101]}],
    }  # fmt: skip


def test_a_scored_prompt_takes_the_free_slot_with_least_to_lose() -> None:
    slots = [
        SlotView(0, [1, 2, 3], last_used=5.0),
        SlotView(1, [1], last_used=9.0),
        SlotView(2, [], last_used=1.0, free=False),
    ]
    start = plan_fresh(slots)
    assert (start.seq, start.reused, start.copy_from, start.restore) == (1, 0, None, None)
