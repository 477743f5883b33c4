"""`cortex up` as a user runs it: a real process tree, embedded NATS, the bundled demo model,
answered through curl and the official openai SDK, then stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import queue
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, write_catalogue
from tests.support.tiny_gguf import build_tiny_gguf

READY_TIMEOUT_S = 120


@dataclass
class UpProcess:
    process: subprocess.Popen[str]
    lines: queue.Queue[str | None]
    base_url: str
    transcript: list[str]
    metrics_urls: list[str]

    def wait_for(self, needle: str, timeout: float) -> str:
        """Read output lines until one contains `needle` (fails on exit or deadline)."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no {needle!r} within {timeout}s:\n{''.join(self.transcript[-40:])}")
            if line is None:
                pytest.fail(
                    f"cortex up exited before {needle!r}:\n{''.join(self.transcript[-40:])}"
                )
            if needle in line:
                return line


def start_up(tmp_path: Path, *extra: str) -> UpProcess:
    port, metrics, neuron_metrics, scheduler_metrics = (free_port() for _ in range(4))
    config = tmp_path / "cortex.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[nats]\nembedded_port = -1\n'
        f'[gateway]\nlisten = "127.0.0.1:{port}"\nmetrics_listen = "127.0.0.1:{metrics}"\n'
        f'[neuron]\nmetrics_listen = "127.0.0.1:{neuron_metrics}"\n'
        f'[scheduler]\nmetrics_listen = "127.0.0.1:{scheduler_metrics}"\n'
    )
    metrics_urls = [
        f"http://127.0.0.1:{p}/metrics" for p in (metrics, neuron_metrics, scheduler_metrics)
    ]
    command = ["up", "--config", str(config), *extra]
    return follow(command, f"http://127.0.0.1:{port}", metrics_urls)


def follow(args: list[str], base_url: str = "", metrics_urls: list[str] | None = None) -> UpProcess:
    """Run `cortex ARGS`, its output read line by line as it comes."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cortex_cli.main", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()
    transcript: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            transcript.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return UpProcess(process, lines, base_url, transcript, metrics_urls or [])


def child_running(up: UpProcess, service: str) -> int:
    """The pid of `cortex up`'s child process that runs `service`."""
    pids = subprocess.run(
        ["pgrep", "-P", str(up.process.pid)], capture_output=True, text=True
    ).stdout.split()
    for pid in pids:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if service.encode() in argv:
            return int(pid)
    pytest.fail(f"no {service} child among {pids}")


def scrape(url: str) -> dict[tuple[str, str], float]:
    """Parse a /metrics page with Prometheus' own parser: (sample, outcome label) → value."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, sample.labels.get("outcome", ""))
            samples[key] = samples.get(key, 0.0) + sample.value
    return samples


def stop_up(up: UpProcess) -> int:
    if up.process.poll() is None:
        up.process.send_signal(signal.SIGINT)
    return up.process.wait(timeout=60)


@pytest.fixture
def demo_stack(tmp_path: Path) -> Iterator[UpProcess]:
    up = start_up(tmp_path)
    try:
        up.wait_for("cortex up: ready", READY_TIMEOUT_S)
        yield up
    finally:
        stop_up(up)


@pytest.mark.real_model
def test_demo_model_answers_through_curl_and_the_openai_sdk(demo_stack: UpProcess) -> None:
    assert shutil.which("curl"), "curl is needed for this test"
    question = [{"role": "user", "content": "Name the capital city of France."}]
    greedy = {"max_tokens": 24, "temperature": 0}
    body = json.dumps({"model": "smollm2", "messages": question, **greedy})
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "120", f"{demo_stack.base_url}/v1/chat/completions",
         "-H", "content-type: application/json", "-d", body],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    answer = json.loads(result.stdout)
    content = answer["choices"][0]["message"]["content"]
    assert "Paris" in content
    assert answer["usage"]["completion_tokens"] > 0

    client = openai.OpenAI(base_url=f"{demo_stack.base_url}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": "Name the capital city of France."}],
        max_tokens=24, temperature=0, stream=True,
    )  # fmt: skip
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    # Greedy decoding of the same prompt gives the same answer, streamed or not.
    assert streamed == content
    assert [m.id for m in client.models.list()] == ["smollm2-135m-instruct", "smollm2"]


def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    tiny = build_tiny_gguf(tmp_path / "tiny.gguf", ("Hi", "!"))
    models = write_catalogue(
        tmp_path / "models.toml", [{"id": "tiny", "path": str(tiny.path), "n_ctx": 128}]
    )
    up = start_up(tmp_path, "--models", str(models))
    try:
        up.wait_for("cortex up: ready", READY_TIMEOUT_S)
        client = openai.OpenAI(base_url=f"{up.base_url}/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "x"}]
        )
        assert reply.choices[0].message.content == "Hi!"
        gateway, neuron, scheduler = (scrape(url) for url in up.metrics_urls)
        assert gateway[("cortex_requests_total", "ok")] == 1
        assert gateway[("cortex_cold_starts_total", "")] == 1
        assert gateway[("cortex_neurons_up", "")] == 1
        assert neuron[("cortex_neuron_model_loads_total", "ok")] == 1
        assert neuron[("cortex_neuron_generated_tokens_total", "")] == 2
        assert scheduler[("cortex_scheduler_leader", "")] == 1
        assert scheduler[("cortex_scheduler_loads_total", "ok")] == 1
        children = subprocess.run(
            ["pgrep", "-P", str(up.process.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) == 4  # nats-server, scheduler, neuron, gateway
    finally:
        code = stop_up(up)
    assert code == 0, "".join(up.transcript[-30:])
    assert "cortex up: stopped" in "".join(up.transcript)
    for pid in children:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )


def test_a_child_that_dies_is_reported_and_stops_the_stack(tmp_path: Path) -> None:
    tiny = build_tiny_gguf(tmp_path / "tiny.gguf", ("Hi",))
    models = write_catalogue(tmp_path / "models.toml", [{"id": "tiny", "path": str(tiny.path)}])
    up = start_up(tmp_path, "--models", str(models))
    try:
        up.wait_for("cortex up: ready", READY_TIMEOUT_S)
        scheduler = child_running(up, "scheduler")
        os.kill(scheduler, signal.SIGKILL)
        up.wait_for("scheduler exited unexpectedly with code -9", 30)
        code = up.process.wait(timeout=60)
    finally:
        stop_up(up)
    assert code == 1
    assert "cortex up: stopped: scheduler exited unexpectedly" in "".join(up.transcript)


def exited_within(pid: int, timeout: float) -> bool:
    """Whether process `pid` (not our child) ends within `timeout`: waits on its pidfd."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


def test_killing_cortex_up_leaves_no_process_behind(tmp_path: Path) -> None:
    """SIGKILL gives `cortex up` no chance to stop its children: they, the embedded
    nats-server included, must stop by themselves, or the next `cortex up` finds its ports
    taken."""
    tiny = build_tiny_gguf(tmp_path / "tiny.gguf", ("Hi",))
    models = write_catalogue(tmp_path / "models.toml", [{"id": "tiny", "path": str(tiny.path)}])
    up = start_up(tmp_path, "--models", str(models))
    try:
        up.wait_for("cortex up: ready", READY_TIMEOUT_S)
        children = subprocess.run(
            ["pgrep", "-P", str(up.process.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) == 4  # nats-server, scheduler, neuron, gateway
        up.process.kill()
        up.process.wait(timeout=30)
        left = [pid for pid in children if not exited_within(int(pid), 30)]
        names = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:3] for pid in left]
        assert not left, f"still running after cortex up was killed: {names}"
    finally:
        stop_up(up)


def test_bad_config_exits_non_zero_naming_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "cortex.toml"
    config.write_text("[gateway]\nlisten = 31313\n")
    result = subprocess.run(
        [sys.executable, "-m", "cortex_cli.main", "up", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert str(config) in result.stderr and "gateway.listen" in result.stderr


def test_a_new_host_joins_a_running_fleet_with_one_command(tmp_path: Path) -> None:
    """`cortex up --join URL` on a second "host" runs only a neuron on the first one's bus:
    it shows in `cortex status` and its model in the first gateway's catalogue."""
    tiny = build_tiny_gguf(tmp_path / "tiny.gguf", ("Hi",))
    first = tmp_path / "first"
    first.mkdir()
    models = write_catalogue(first / "models.toml", [{"id": "tiny", "path": str(tiny.path)}])
    up = start_up(first, "--models", str(models))
    host = tmp_path / "second"
    host.mkdir()
    joined: UpProcess | None = None
    try:
        up.wait_for("cortex up: ready", READY_TIMEOUT_S)
        url = next(
            line.split('"')[3] for line in up.transcript if line.strip().startswith('"nats"')
        )
        extra = write_catalogue(host / "models.toml", [{"id": "extra", "path": str(tiny.path)}])
        config = host / "cortex.toml"
        config.write_text(
            f'state_dir = "{host / "state"}"\n'
            f'[neuron]\nname = "joiner"\nmodels = "{extra}"\nmetrics_listen = ""\n'
        )
        joined = follow(["up", "--join", url, "--config", str(config)])
        joined.wait_for("cortex up: joined: joiner is on the bus", READY_TIMEOUT_S)
        status = subprocess.run(
            [sys.executable, "-m", "cortex_cli.main", "status", "--json", "--config", str(config)],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "CORTEX_NATS_URL": url},
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        nodes = {n["node"]: n for n in json.loads(status.stdout)["neurons"]}
        assert "joiner" in nodes and len(nodes) == 2
        assert [m["id"] for m in nodes["joiner"]["catalogue"]] == ["extra"]
        with urllib.request.urlopen(f"{up.base_url}/v1/models", timeout=10) as response:
            listed = {m["id"] for m in json.load(response)["data"]}
        assert {"tiny", "extra"} <= listed
        children = subprocess.run(
            ["pgrep", "-P", str(joined.process.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) == 1  # the neuron alone
    finally:
        if joined is not None:
            assert stop_up(joined) == 0, "".join(joined.transcript[-30:])
        stop_up(up)


def test_a_second_stack_on_a_state_dir_in_use_stops_before_it_starts(tmp_path: Path) -> None:
    """Its nats-server would rebuild the running one's JetStream files: it says who holds
    them and starts nothing."""
    from cortex_cli.up import claim_state_dir

    state = tmp_path / "state"
    held = claim_state_dir(state)  # as a running `cortex up` holds it
    try:
        second = subprocess.run(
            [sys.executable, "-m", "cortex_cli.main", "up"],
            env={**os.environ, "CORTEX_STATE_DIR": str(state), "CORTEX_NATS_URL": ""},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        held.close()
    assert second.returncode == 1, second.stderr
    said = second.stdout + second.stderr
    assert f"{state} is in use by cortex up (pid {os.getpid()})" in said
    assert not (state / "nats").exists()  # no nats-server was started on it


def test_a_port_another_process_holds_stops_the_stack_before_it_starts(tmp_path: Path) -> None:
    """Else the other server's /health would pass for this stack's gateway: `ready`, and
    the api address of someone else's server."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "cortex_cli.main", "up"],
            env={**os.environ, "CORTEX_STATE_DIR": str(tmp_path / "state"), "CORTEX_NATS_URL": "",
                 "CORTEX_GATEWAY_LISTEN": f"127.0.0.1:{port}",
                 "CORTEX_GATEWAY_METRICS_LISTEN": "127.0.0.1:0",
                 "CORTEX_NEURON_METRICS_LISTEN": "", "CORTEX_SCHEDULER_METRICS_LISTEN": ""},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    assert f"gateway.listen 127.0.0.1:{port}: Address already in use" in said
    assert "cortex up: ready" not in said and not (tmp_path / "state" / "nats").exists()
