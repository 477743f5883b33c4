"""`cortex explain` in words (pure): a model already loaded is said to be there and nothing
else would load; one no neuron serves is the scheduler's refusal, as `cortex load` says it."""

import pytest

from cortex_cli.fleet_commands import CommandError, explain_lines, plan_of
from cortex_wire import codec
from cortex_wire.messages import CandidateView, EvictionView, Explanation, SchedulerReply, WireError

TWO = [
    CandidateView("n1", True, 600),
    CandidateView("n2", False, 100, [EvictionView("n2", "b", "lru")]),
]


def test_a_loaded_model_is_there_and_where_a_replica_more_could_go() -> None:
    plan = Explanation("a", "n1", "fits in 600 MiB free", already_on=["n1"], candidates=TWO)
    lines = explain_lines(plan, "")
    assert lines == [
        "a is already on n1 (nothing to load)",
        "  a replica more could load on n2 (after evicting b, 100 MiB free): "
        "cortex load a --node n2",
    ]
    assert not any("would load on" in line for line in lines)
    assert explain_lines(plan, "n1")[0] == "a is already on n1 (nothing to load)"


def test_asked_for_another_neuron_it_says_where_it_is_and_what_would_load() -> None:
    plan = Explanation("a", "n2", "fits after evicting b", already_on=["n1"],
                       evictions=[EvictionView("n2", "b", "lru")], candidates=TWO[1:])  # fmt: skip
    assert explain_lines(plan, "n2") == [
        "a is already on n1",
        "a would load on [bold]n2[/]: fits after evicting b",
        "  evict b from n2: lru",
    ]


def test_a_model_not_loaded_would_load_on_the_best_candidate() -> None:
    plan = Explanation("a", "n1", "fits in 600 MiB free", candidates=TWO,
                       rejected={"n3": "does not serve this model"})  # fmt: skip
    assert explain_lines(plan, "") == [
        "a would load on [bold]n1[/]: fits in 600 MiB free",
        "  also possible: n2 (after evicting b, 100 MiB free)",
        "  not n3: does not serve this model",
    ]


def test_a_refusal_instead_of_a_plan_is_the_command_s_error() -> None:
    unknown = WireError(
        code="model_not_found", message="unknown model 'nope': no live neuron serves it"
    )
    with pytest.raises(CommandError) as failed:
        plan_of(codec.encode(SchedulerReply(ok=False, error=unknown)))
    assert str(failed.value) == "model_not_found: unknown model 'nope': no live neuron serves it"
    plan = Explanation("a", "n1", "fits")
    assert plan_of(codec.encode(plan)) == plan


def test_an_explanation_that_says_why_there_is_none_is_the_command_s_error() -> None:
    """What the scheduler answers for a model no live neuron serves: an Explanation with its
    error (an older CLI still decodes it; this one fails with the error's words)."""
    unknown = WireError(code="model_not_found", message="unknown model 'nope'")
    none = Explanation("nope", None, unknown.message, error=unknown)
    with pytest.raises(CommandError) as failed:
        plan_of(codec.encode(none))
    assert str(failed.value) == "model_not_found: unknown model 'nope'"
