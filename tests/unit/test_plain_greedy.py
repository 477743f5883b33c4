"""Which sampling is the bare argmax (cortex_neuron.llama_backend.plain_greedy): greedy with
nothing that reshapes the logits or constrains the choice."""

from __future__ import annotations

import pytest

from cortex_neuron.llama_backend import plain_greedy
from cortex_wire.messages import SamplingParams


def test_greedy_with_nothing_else_is_the_argmax() -> None:
    assert plain_greedy(SamplingParams(temperature=0.0))
    assert plain_greedy(SamplingParams(temperature=-1.0, top_k=5, top_p=0.5))


@pytest.mark.parametrize(
    "changed",
    [
        {"temperature": 0.7},
        {"logit_bias": {5: 2.0}},
        {"json_schema": {"type": "object"}},
        {"repeat_penalty": 1.1},
        {"presence_penalty": 0.5},
        {"frequency_penalty": 0.5},
    ],
    ids=lambda changed: next(iter(changed)),
)
def test_anything_that_reshapes_or_constrains_needs_the_chain(changed: dict) -> None:
    assert not plain_greedy(SamplingParams(**{"temperature": 0.0, **changed}))
