"""How a neuron turns a streamed call's chunks into frames (`coalesce`): one frame per run
of one call's chunks, numbered by call, whole or in parts across batches."""

from cortex_neuron.channel import CallChunk, TextChunk
from cortex_neuron.frames import coalesce
from cortex_wire.messages import Delta, ToolCallFrame


def test_one_batch_merges_a_calls_parts_and_counts_calls() -> None:
    calls = [0]
    frames = coalesce(
        [
            TextChunk("On it.", 2),
            CallChunk("Read", "", 1, first=True, last=False),
            CallChunk("", '{"path": ', 1, first=False, last=False),
            CallChunk("", '"a"}', 1, first=False, last=True),
            CallChunk("Ls", "{}", 3),  # a whole call
        ],
        first_seq=7,
        calls=calls,
    )
    assert frames == [
        Delta(seq=7, text="On it.", tokens=2),
        ToolCallFrame(seq=8, index=0, name="Read", arguments='{"path": "a"}', tokens=3),
        ToolCallFrame(seq=9, index=1, name="Ls", arguments="{}", tokens=3),
    ]
    assert calls == [2]


def test_a_call_across_batches_keeps_its_index_until_it_ends() -> None:
    calls = [0]
    first = coalesce([CallChunk("Read", '{"pa', 1, first=True, last=False)], 0, calls)
    second = coalesce([CallChunk("", "th", 1, first=False, last=False)], 1, calls)
    third = coalesce([CallChunk("", '": 1}', 1, first=False, last=True)], 2, calls)
    assert [(f.index, f.name, f.arguments, f.complete) for f in [*first, *second, *third]] == [
        (0, "Read", '{"pa', False), (0, "", "th", False), (0, "", '": 1}', True),
    ]  # fmt: skip
    assert calls == [1]
    after = coalesce([CallChunk("Ls", "{}", 1)], 3, calls)
    assert [(f.index, f.complete) for f in after] == [(1, True)]
