"""The systemd units booted for real: a container with systemd as PID 1 (privileged) on
the cortex image, the four units from deploy/systemd installed and enabled as the units'
README says; once booted, every unit is active and the gateway answers a chat completion
that the neuron unit serves (the demo model, on the CPU)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.docker_host import ROOT, base_image, build_context

pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]

UNITS = ["cortex-nats", "cortex-scheduler", "cortex-neuron", "cortex-gateway"]
BOOTABLE = """\
FROM {image}
USER root
RUN apt-get update \\
 && apt-get install -y --no-install-recommends systemd systemd-sysv \\
 && rm -rf /var/lib/apt/lists/*
COPY units/ /etc/systemd/system/
COPY cortex.toml /etc/cortex/cortex.toml
RUN cp /etc/cortex/demo-models.toml /etc/cortex/models.toml && systemctl enable {units}
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/lib/systemd/systemd"]
"""
CONFIG = """\
[gateway]
listen = "0.0.0.0:31313"

[neuron]
name = "unit-neuron"
"""


def docker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def shows(command: list[str], *texts: str, timeout: float) -> bool:
    """Whether a line of what `command` prints (it follows a log) holds every one of
    `texts` within `timeout` seconds."""
    follow = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace")  # fmt: skip
    seen = threading.Event()

    def read() -> None:
        assert follow.stdout is not None
        for line in follow.stdout:
            if all(text in line for text in texts):
                seen.set()
                return

    threading.Thread(target=read, daemon=True).start()
    try:
        return seen.wait(timeout)
    finally:
        follow.terminate()
        follow.wait(10)


def test_the_units_boot_under_systemd_and_serve(docker_ready, tmp_path: Path) -> None:
    context = build_context(tmp_path / "context")
    tag = f"cortex-units-{uuid.uuid4().hex[:8]}"
    built = docker("build", "-t", f"{tag}:app", "--build-arg", f"BASE={base_image(tmp_path)}",
                   str(context), timeout=2000)  # fmt: skip
    assert built.returncode == 0, (built.stdout + built.stderr)[-4000:]
    boot = tmp_path / "boot"
    (boot / "units").mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(ROOT / "deploy" / "systemd" / f"{unit}.service", boot / "units")
    (boot / "cortex.toml").write_text(CONFIG)
    (boot / "Dockerfile").write_text(BOOTABLE.format(image=f"{tag}:app", units=" ".join(UNITS)))
    bootable = docker("build", "-t", f"{tag}:boot", str(boot), timeout=900)
    assert bootable.returncode == 0, (bootable.stdout + bootable.stderr)[-4000:]
    name = tag
    # systemd in a container: its own cgroups (read-only view), tmpfs /run, the one
    # capability it needs for the units' sandboxing (ProtectSystem, PrivateTmp); a tty, so
    # its boot messages show in the container's log.
    run = docker("run", "-d", "-t", "--name", name, "--cap-add", "SYS_ADMIN",
                 "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro", "--tmpfs", "/run",
                 "--tmpfs", "/run/lock", "-p", "127.0.0.1::31313", f"{tag}:boot")  # fmt: skip
    assert run.returncode == 0, run.stderr
    try:
        booted = shows(["docker", "logs", "-f", name], "Reached target", "multi-user.target",
                       timeout=300)  # fmt: skip
        assert booted, docker("logs", name).stdout[-3000:]
        journal = ["docker", "exec", name, "journalctl", "-f", "-o", "cat", "-u"]
        assert shows([*journal, "cortex-gateway"], "gateway_listening", timeout=120)
        assert shows([*journal, "cortex-neuron"], "neuron_started", timeout=120)
        states = {u: docker("exec", name, "systemctl", "is-active", u).stdout.strip()
                  for u in UNITS}  # fmt: skip
        assert states == dict.fromkeys(UNITS, "active")
        port = docker("port", name, "31313").stdout.strip().rpartition(":")[2]
        base = f"http://127.0.0.1:{port}"
        ready = httpx.get(f"{base}/health", params={"neuron": "unit-neuron", "scheduler": "true",
                                                     "wait": 60}, timeout=90)  # fmt: skip
        assert ready.status_code == 200, ready.text
        reply = httpx.post(
            f"{base}/v1/chat/completions",
            json={"model": "smollm2", "messages": [{"role": "user", "content": "Say hi"}],
                  "max_tokens": 8},
            timeout=300,
        )  # fmt: skip
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"]
    finally:
        docker("rm", "-f", name)
        docker("rmi", f"{tag}:boot", f"{tag}:app")
