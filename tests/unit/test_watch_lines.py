import json

from cortex_cli.watch import readable_subject, summarize
from cortex_wire import codec, subjects
from cortex_wire.messages import Delta, Device, Done, Heartbeat, LoadedModel, Usage


def test_heartbeats_frames_and_events_read_as_one_line_each() -> None:
    beat = Heartbeat(
        node="gpu-1", instance="i", seq=7, sent_at=0, interval_s=1,
        devices=[Device(index=0, name="RTX 4090", kind="cuda", total_mb=24000, free_mb=20000)],
        memory_budget_mb=24000, models=[LoadedModel(id="m", state="ready", busy=1)],
    )  # fmt: skip
    line = summarize(subjects.heartbeat("gpu-1"), codec.encode(beat))
    assert line == "gpu-1 #7 [RTX 4090 4000/24000 MiB used] models: m=ready 1+0q"
    assert (
        summarize(subjects.stream("r1"), codec.encode(Delta(seq=3, text="hi\n")))
        == 'delta #3 "hi\\n"'
    )
    done = Done(seq=4, finish_reason="stop", usage=Usage(prompt_tokens=9, completion_tokens=2))
    assert (
        summarize(subjects.stream("r1"), codec.encode(done)) == "done #4 stop prompt=9 completion=2"
    )
    event = {"node": "n", "model": "m", "state": "ready"}
    assert json.loads(summarize("cortex.event.model.n.m", json.dumps(event).encode())) == event
    assert summarize("cortex.x", b"\xff") == "1 bytes (not JSON)"


def test_subjects_show_the_ids_they_carry() -> None:
    assert (
        readable_subject(subjects.model_event("gpu.1", "qwen3:8b"))
        == "cortex.event.model.gpu.1.qwen3:8b"
    )


def test_a_gateway_heartbeat_reads_as_one_line() -> None:
    from cortex_wire.messages import GatewayHeartbeat

    beat = GatewayHeartbeat(gateway="gw:1", sent_at=0, interval_s=1, streams=3)
    line = summarize(subjects.gateway_heartbeat("gw:1"), codec.encode(beat))
    assert line == "gateway gw:1 alive, following 3 streams"


def test_every_subject_prints_whatever_its_kind_and_payload() -> None:
    from rich.console import Console

    from cortex_cli.watch import watch_line

    console = Console(record=True, width=300, color_system="truecolor")
    for subject, payload in (  # kinds without a style (rich used to raise MarkupError)
        ("cortex.metrics.request", b'{"text": "[/] [bold]x"}'),
        ("cortex.neuron.n1.vocab", b'"[red]"'),
        ("cortex.sched.ensure", b'{"model": "a\\\\"}'),
    ):
        line = watch_line("12:00:00.000", subject, payload)
        console.print(line, soft_wrap=True)
        assert line.plain.startswith(f"12:00:00.000 {subject} ")
    text = console.export_text()
    assert '"text":"[/] [bold]x"' in text and '"[red]"' in text and '"model":"a\\\\"' in text


def test_a_bad_subject_pattern_is_named_before_connecting() -> None:
    from cortex_cli.watch import pattern_problem

    assert pattern_problem("cortex.>") is None
    assert pattern_problem("cortex.*.heartbeat") is None
    for bad in ("foo bar", "", "cortex..x", "cortex.>.x", "cortex.a*", "cortex.\t"):
        assert pattern_problem(bad), bad
