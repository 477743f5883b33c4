"""Each service run alone, the way compose and systemd run them."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest


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
