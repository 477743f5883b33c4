"""The decode-step cost model: a line through the steps' (tokens, seconds)."""

from __future__ import annotations

import pytest

from cortex_neuron.step_cost import StepCost


def test_the_line_through_the_steps_is_found() -> None:
    cost = StepCost()
    for tokens in [1, 4, 8, 100, 300, 512] * 3:
        cost.observe(tokens, 0.010 + 0.002 * tokens)
    line = cost.line()
    assert line is not None
    assert line.fixed_s == pytest.approx(0.010, rel=1e-6)
    assert line.per_token_s == pytest.approx(0.002, rel=1e-6)


def test_steps_of_one_size_or_too_few_say_nothing() -> None:
    cost = StepCost()
    for _ in range(50):
        cost.observe(8, 0.03)
    assert cost.line() is None
    few = StepCost()
    for tokens in (1, 300):
        few.observe(tokens, 0.01 + 0.002 * tokens)
    assert few.line() is None


def test_recent_steps_outweigh_old_ones() -> None:
    cost = StepCost()
    for tokens in [1, 200] * 50:
        cost.observe(tokens, 0.010 + 0.002 * tokens)
    for tokens in [1, 200] * 200:  # the machine got three times slower
        cost.observe(tokens, 3 * (0.010 + 0.002 * tokens))
    line = cost.line()
    assert line is not None
    assert line.per_token_s == pytest.approx(0.006, rel=0.01)


def test_a_fit_that_makes_no_sense_is_not_used() -> None:
    cost = StepCost()
    for tokens in [1, 200] * 10:  # bigger steps ran faster: noise, not a cost model
        cost.observe(tokens, 0.05 - 0.0001 * tokens)
    assert cost.line() is None
