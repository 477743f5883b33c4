"""`docker compose up --build` for real, as a new user on a machine without a GPU runs it:
the image builds (on the default base, or a Debian base made here when that cannot be
pulled), every service turns healthy, a chat completion comes back through the gateway,
its metrics are served, and `down -v` removes it all.

The build context is a copy of this checkout with build-time inputs (docker_host.py)."""

from __future__ import annotations

import socket
import subprocess
import threading
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.docker_host import base_image, build_context

SERVICES = {"nats", "scheduler", "gateway", "neuron"}

pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HealthWatch:
    """`docker events` for one compose project: which services turned healthy."""

    def __init__(self, project: str) -> None:
        self.healthy: set[str] = set()
        self.all_healthy = threading.Event()
        self._process = subprocess.Popen(
            ["docker", "events", "--filter", "type=container", "--filter",
             "event=health_status", "--filter", f"label=com.docker.compose.project={project}",
             "--format", '{{index .Actor.Attributes "com.docker.compose.service"}} {{.Status}}'],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            service, _, status = line.strip().partition(" ")
            if status.endswith(": healthy"):
                self.healthy.add(service)
                if self.healthy >= SERVICES:
                    self.all_healthy.set()

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(10)


def test_compose_comes_up_on_the_cpu_and_serves(docker_ready, tmp_path: Path) -> None:
    context = build_context(tmp_path / "context")
    project = f"cortex-test-{uuid.uuid4().hex[:8]}"
    port, metrics_port = free_port(), free_port()
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(tmp_path),
        "COMPOSE_PROJECT_NAME": project, "CORTEX_BASE": base_image(tmp_path),
        "CORTEX_PORT": str(port), "CORTEX_METRICS_PORT": str(metrics_port),
    }  # fmt: skip
    compose = ["docker-compose", "-f", str(context / "compose.yaml")]
    watch = HealthWatch(project)
    try:
        up = subprocess.run([*compose, "up", "--build", "-d"], cwd=context, env=env,
                            capture_output=True, text=True, timeout=2000)  # fmt: skip
        assert up.returncode == 0, (up.stdout + up.stderr)[-4000:]
        assert watch.all_healthy.wait(300), f"healthy: {sorted(watch.healthy)}"
        base = f"http://127.0.0.1:{port}"
        reply = httpx.post(
            f"{base}/v1/chat/completions",
            json={"model": "smollm2", "messages": [{"role": "user", "content": "Say hi"}],
                  "max_tokens": 12, "temperature": 0},
            timeout=300,
        )  # fmt: skip
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"]
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).text
        assert "cortex_requests_total{" in metrics and 'outcome="ok"' in metrics
        user = subprocess.run([*compose, "exec", "-T", "gateway", "id", "-u"], cwd=context,
                              env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert user.stdout.strip() not in ("", "0"), "services must not run as root"
        inputs = subprocess.run([*compose, "exec", "-T", "gateway", "ls", "/inputs"],
                                cwd=context, env=env, capture_output=True, timeout=60)  # fmt: skip
        assert inputs.returncode != 0, "build-time inputs (the CA bundle) reached the image"
    finally:
        watch.close()
        down = subprocess.run([*compose, "down", "-v"], cwd=context, env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert down.returncode == 0, down.stderr[-2000:]
    label = f"label=com.docker.compose.project={project}"
    left = subprocess.run(["docker", "ps", "-aq", "--filter", label],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert left.stdout.strip() == "", "down left containers behind"
