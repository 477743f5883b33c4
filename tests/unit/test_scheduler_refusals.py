"""What the scheduler refuses an operator: unknown models, unloads a pin would undo."""

from cortex_scheduler.policy import NeuronState
from cortex_scheduler.refusals import (
    not_pinned,
    pinned_against_unload,
    unknown_model,
    unknown_node,
)
from cortex_wire.messages import CatalogueEntry, Pin, WireError


def serving(node: str, *models: str) -> NeuronState:
    catalogue = tuple(CatalogueEntry(id=m, n_ctx=256, footprint_mb=100) for m in models)
    return NeuronState(node=node, capacity_mb=1000, catalogue=catalogue)


def test_a_model_no_live_neuron_serves_is_not_found_not_a_shortage() -> None:
    fleet = [serving("n2", "a"), serving("n1", "b")]
    unknown = unknown_model("ghost", fleet)
    assert unknown is not None and unknown.code == "model_not_found"
    assert "'ghost'" in unknown.message and "n1, n2" in unknown.message
    assert unknown_model("a", fleet) is None  # served somewhere: a capacity question
    assert unknown_model("ghost", []) is None  # no neuron heard: no telling


def test_a_neuron_not_in_the_fleet_is_not_found() -> None:
    fleet = [serving("n2", "a"), serving("n1", "b")]
    stranger = unknown_node("nope", fleet)
    assert stranger is not None and stranger.code == "not_found"
    assert "'nope'" in stranger.message and "n1, n2" in stranger.message
    assert unknown_node("n1", fleet) is None and unknown_node("", fleet) is None
    assert unknown_node("nope", []) is None  # no neuron heard: no telling


def test_unloading_is_refused_where_a_pin_holds_the_model() -> None:
    pins = [Pin(model="a", node="n1"), Pin(model="b")]
    on_n1 = pinned_against_unload("a", ["n1"], pins)
    assert on_n1 is not None and on_n1.code == "model_pinned"
    assert on_n1.message == "'a' is pinned on n1; unpin it first"
    assert pinned_against_unload("a", ["n2"], pins) is None  # the pin holds it elsewhere
    anywhere = pinned_against_unload("b", ["n2"], pins)
    assert anywhere is not None and "pinned on any neuron" in anywhere.message
    assert pinned_against_unload("c", ["n1"], pins) is None


def test_a_refused_pin_says_nothing_was_pinned_and_why() -> None:
    refused = not_pinned(WireError(code="no_capacity", message="no neuron can hold 'a'"))
    assert (refused.code, refused.message) == ("no_capacity", "not pinned: no neuron can hold 'a'")
