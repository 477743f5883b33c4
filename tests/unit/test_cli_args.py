"""The `cortex` command line: --config on either side of the command, intervals > 0."""

import pytest

from cortex_cli.main import parse_args


def test_config_goes_before_or_after_the_command_and_after_wins() -> None:
    assert parse_args(["--config", "a.toml", "status"]).config == "a.toml"
    assert parse_args(["status", "--config", "b.toml"]).config == "b.toml"
    assert parse_args(["--config", "a.toml", "status", "--config", "b.toml"]).config == "b.toml"
    assert parse_args(["--config", "a.toml", "up"]).config == "a.toml"
    assert parse_args(["status"]).config is None


@pytest.mark.parametrize("interval", ["0", "-1", "nan", "soon"])
def test_top_needs_an_interval_above_zero(
    interval: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["top", "--interval", interval])
    assert exited.value.code == 2
    assert "argument --interval" in capsys.readouterr().err
    assert parse_args(["top", "--interval", "0.2"]).interval == 0.2


def test_status_says_why_a_model_failed() -> None:
    from rich.console import Console

    from cortex_cli.fleet_commands import _status_tables
    from cortex_wire.messages import Device, FleetStatus, Heartbeat, LoadedModel

    failed = LoadedModel(id="bad", state="failed", error="bad.gguf is not a GGUF file")
    beat = Heartbeat(
        node="n1", instance="i", seq=1, sent_at=0.0, interval_s=1.0, memory_budget_mb=100,
        devices=[Device(index=0, name="cpu", kind="cpu", total_mb=100, free_mb=100)],
        models=[failed],
    )  # fmt: skip
    console = Console(record=True, width=200)
    for table in _status_tables(FleetStatus(leader="s", strategy="lru", neurons=[beat], pins=[])):
        console.print(table)
    assert "failed: bad.gguf is not a GGUF file" in console.export_text()
