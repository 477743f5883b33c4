"""An answer held to a JSON schema writes no marker or control token: `held` biases them
out of the schema's sampler, on top of what the caller asked for."""

from __future__ import annotations

import math

from cortex_neuron.engine import held
from cortex_wire.messages import SamplingParams

SCHEMA = {"type": "object"}


def test_a_schema_bans_the_unwritable_tokens_and_keeps_the_callers_biases() -> None:
    params = SamplingParams(json_schema=SCHEMA, logit_bias={5: 2.0, 7: 1.0})
    assert held(params, frozenset({7, 9})).logit_bias == {5: 2.0, 7: -math.inf, 9: -math.inf}


def test_without_a_schema_nothing_is_banned() -> None:
    params = SamplingParams(logit_bias={5: 2.0})
    assert held(params, frozenset({7})) is params
