"""How the neuron paces a stream's frames as its load grows."""

from cortex_neuron.frames import frame_pause


def test_frames_are_paced_only_under_load_and_more_as_streams_pile_up() -> None:
    assert frame_pause(0.02, 1) == 0.0  # a lone stream is never held back
    assert frame_pause(0.02, 2) == frame_pause(0.02, 16) == 0.02
    assert frame_pause(0.02, 17) == 0.04
    assert frame_pause(0.02, 64) == frame_pause(0.02, 1000) == 0.08  # stretched at most 4x
    assert frame_pause(0.0, 64) == 0.0
