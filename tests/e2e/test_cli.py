"""Each service run alone, the way compose and systemd run them."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.support.fleet import running_fleet
from tests.support.tiny_gguf import TinyModel


def cortex(*args: str) -> list[str]:
    return [sys.executable, "-m", "cortex_cli.main", *args]


@pytest.mark.parametrize("service", ["gateway", "neuron", "scheduler", "nats"])
def test_bad_config_stops_each_service_with_one_clear_line(tmp_path: Path, service: str) -> None:
    config = tmp_path / "cortex.toml"
    config.write_text('[eviction]\nstrategy = "fifo"\n')
    result = subprocess.run(
        cortex(service, "--config", str(config)), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(config) in lines[0] and "eviction.strategy" in lines[0] and "fifo" in lines[0]


def test_neuron_without_a_catalogue_says_which_key_to_set(tmp_path: Path) -> None:
    result = subprocess.run(
        cortex("neuron"), capture_output=True, text=True, timeout=60, env={"PATH": ""}
    )
    assert result.returncode == 2
    assert "neuron.models" in result.stderr and "CORTEX_NEURON_MODELS" in result.stderr


def test_cortex_nats_serves_jetstream_until_interrupted(tmp_path: Path) -> None:
    config = tmp_path / "cortex.toml"
    config.write_text(f'state_dir = "{tmp_path}"\n[nats]\nembedded_port = -1\n')
    process = subprocess.Popen(
        cortex("nats", "--config", str(config)), stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    output = []
    for line in process.stderr:
        output.append(line)
        if "Server is ready" in line:
            break
    text = "".join(output)
    assert "Starting JetStream" in text
    assert re.search(r"Listening for client connections on 127\.0\.0\.1:\d+", text)
    assert (tmp_path / "nats").is_dir()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0


def operator_env() -> dict[str, str]:
    """This environment without CORTEX_* overrides (the config file alone decides)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CORTEX_")}


def test_without_a_url_the_cli_looks_for_the_embedded_server_and_says_so(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    config = tmp_path / "cortex.toml"
    config.write_text(f"[nats]\nembedded_port = {port}\n")
    result = subprocess.run(
        cortex("status", "--config", str(config)),
        capture_output=True, text=True, timeout=60, env=operator_env(),
    )  # fmt: skip
    assert result.returncode == 1
    assert f"cannot reach NATS at nats://127.0.0.1:{port} (" in result.stderr
    assert "[nats] embedded_host:embedded_port" in result.stderr and str(config) in result.stderr
    assert "[nats] url or CORTEX_NATS_URL" in result.stderr

    config.write_text("[nats]\nembedded_port = -1\n")
    result = subprocess.run(
        cortex("status", "--config", str(config)),
        capture_output=True, text=True, timeout=60, env=operator_env(),
    )  # fmt: skip
    assert result.returncode == 1
    assert "embedded_port is -1" in result.stderr and "cannot be known" in result.stderr
    assert "[nats] url or CORTEX_NATS_URL" in result.stderr


def test_config_before_the_command_is_read(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    result = subprocess.run(
        cortex("--config", str(missing), "status"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"cortex status: config error: {missing}: file not found"


def test_a_bad_watch_pattern_is_one_line_and_exit_2(tmp_path: Path, nats_url: str) -> None:
    config = tmp_path / "cortex.toml"
    config.write_text(f'[nats]\nurl = "{nats_url}"\n')
    result = subprocess.run(
        cortex("watch", "foo bar", "--config", str(config)),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cortex watch: invalid subject pattern 'foo bar': ")


def test_top_refuses_an_interval_that_is_not_above_zero() -> None:
    for interval in ("0", "-2"):
        result = subprocess.run(
            cortex("top", "--interval", interval), capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2
        assert "argument --interval: must be > 0" in result.stderr


async def test_explain_refuses_an_unknown_model_and_says_a_loaded_one_is_there(
    tmp_path: Path, hello_model: TinyModel
) -> None:
    """As `cortex load` does: an unknown model is model_not_found (exit 1). A loaded model
    is said to be where it is, not where it "would load"."""
    async with running_fleet(tmp_path) as fleet:
        models = [{"id": "a", "path": str(hello_model.path), "n_ctx": 256, "vram_mb": 400}]
        await fleet.start_neuron("n1", 1000, models)
        await fleet.start_scheduler()
        config = tmp_path / "cli.toml"
        config.write_text(f'[nats]\nurl = "{fleet.nats_url}"\n')

        async def run(*args: str) -> tuple[int, str, str]:
            process = await asyncio.create_subprocess_exec(
                *cortex(*args, "--config", str(config)), env=operator_env(),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(process.communicate(), 60)
            assert process.returncode is not None
            return process.returncode, out.decode(), err.decode()

        _, _, loading = await run("load", "nope")
        for asked in (("explain", "nope"), ("explain", "nope", "--json")):
            code, out, err = await run(*asked)
            assert (code, out) == (1, ""), (asked, out, err)
            assert "cortex explain: model_not_found: unknown model 'nope'" in err
            assert err.split(": ", 1)[1] == loading.split(": ", 1)[1]  # load's own words
        assert (await run("load", "a"))[0] == 0
        code, out, _ = await run("explain", "a")
        assert code == 0 and "a is already on n1" in out and "would load on" not in out
