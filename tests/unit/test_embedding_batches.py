"""How an embedding request's inputs are grouped into decodes (pure)."""

import json
import math

import pytest

from cortex_gateway.embeddings import openai_request
from cortex_gateway.errors import ApiError
from cortex_neuron.llama_embedder import batches, normalized


def test_inputs_group_in_order_within_the_context_and_the_sequence_limit() -> None:
    assert batches([3, 3, 3], room=6, most=16) == [[0, 1], [2]]
    assert batches([1] * 5, room=100, most=2) == [[0, 1], [2, 3], [4]]
    assert batches([6, 1], room=6, most=16) == [[0], [1]]  # a full input fills its own batch
    assert batches([], room=6, most=16) == []


def test_vectors_are_unit_length_and_zero_stays_zero() -> None:
    assert math.isclose(math.hypot(*normalized([3.0, 4.0])), 1.0)
    assert normalized([3.0, 4.0]) == [0.6, 0.8]
    assert normalized([0.0, 0.0]) == [0.0, 0.0]


def test_an_openai_embedding_request_naming_no_model_is_a_400() -> None:
    with pytest.raises(ApiError, match="model must not be empty") as refused:
        openai_request(json.dumps({"model": "", "input": "x"}).encode())
    assert refused.value.status == 400
