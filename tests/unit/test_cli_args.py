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
