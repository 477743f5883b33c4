"""How an embedding request's inputs are grouped into decodes (pure)."""

import math

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
