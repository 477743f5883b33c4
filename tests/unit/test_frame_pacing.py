"""How the neuron paces a stream's frames as its load grows."""

from cortex_neuron.frames import MAX_PAUSE_S, frame_pause


def test_frames_are_paced_only_under_load_and_more_as_streams_pile_up() -> None:
    assert frame_pause(0.02, 1) == 0.0  # a lone stream is never held back
    assert frame_pause(0.02, 2) == frame_pause(0.02, 16) == 0.02
    assert frame_pause(0.02, 17) == 0.04
    assert frame_pause(0.02, 64) == frame_pause(0.02, 1000) == 0.08  # stretched at most 4x
    assert frame_pause(0.0, 64) == 0.0


def test_slow_steps_stretch_the_pause_to_two_tokens_up_to_a_limit() -> None:
    # 20 tokens/s a stream (a CPU host): a frame waits for two of them, not 20 ms.
    assert frame_pause(0.02, 8, stream_rate=20.0) == 0.1
    # Fast steps (a GPU): the interval already holds two tokens or more.
    assert frame_pause(0.02, 8, stream_rate=400.0) == 0.02
    assert frame_pause(0.02, 8, stream_rate=1.0) == MAX_PAUSE_S
    assert frame_pause(0.02, 1, stream_rate=20.0) == 0.0  # a lone stream is never held
    assert frame_pause(0.0, 8, stream_rate=20.0) == 0.0  # pacing turned off stays off
    assert frame_pause(0.02, 8, stream_rate=0.0) == 0.02  # no rate known yet
