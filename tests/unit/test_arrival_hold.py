"""When a request handed to an idle engine waits for the ones arriving behind it."""

from cortex_neuron.arrivals import HOLD_LIMIT_S, hold_for_more


def hold(**changes: object) -> bool:
    case = {"idle": True, "more_coming": True, "held": 1, "slots": 8, "waited_s": 0.0}
    return hold_for_more(**{**case, **changes})  # type: ignore[arg-type]


def test_an_idle_engine_holds_a_request_while_more_are_on_their_way() -> None:
    assert hold()
    assert hold(held=7, waited_s=HOLD_LIMIT_S / 2)


def test_nothing_is_held_when_nothing_follows_or_the_engine_is_busy() -> None:
    assert not hold(more_coming=False)  # a lone request starts at once
    assert not hold(idle=False)  # a busy engine takes newcomers between steps


def test_the_hold_ends_when_the_slots_are_spoken_for_or_it_has_lasted_long_enough() -> None:
    assert not hold(held=8, slots=8)
    assert not hold(held=1, slots=1)
    assert not hold(waited_s=HOLD_LIMIT_S)  # a steady stream of arrivals cannot stall it
