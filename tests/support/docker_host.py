"""A Docker daemon and a base image for the compose test, made here when there are none:
`dockerd` from Debian's docker.io (started as root, stopped again afterwards), and a
Debian bookworm base made with debootstrap and `docker import` when the default base
image cannot be pulled (no registry access). Waits read the daemon's own output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What the Dockerfile builds on by default, and what stands in for it when it can't be had.
DEFAULT_BASE = "python:3.11-slim-bookworm"
MADE_BASE = "cortex-base:bookworm"


class NoDocker(Exception):
    """Why no Docker daemon can run here (the test skips, saying so)."""


def _docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def _answers() -> bool:
    return shutil.which("docker") is not None and _docker("info").returncode == 0


@contextmanager
def docker_daemon(log: Path, timeout: float = 60) -> Iterator[None]:
    """A running daemon: the one already there, or dockerd started for the duration."""
    if _answers():
        yield
        return
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        raise NoDocker("no Docker daemon, and no dockerd to start (Debian package docker.io)")
    if os.geteuid() != 0:
        raise NoDocker("no Docker daemon, and starting dockerd needs root")
    daemon = subprocess.Popen(
        ["dockerd"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    listening = threading.Event()

    def read() -> None:
        assert daemon.stderr is not None
        with log.open("w") as out:
            for line in daemon.stderr:
                out.write(line)
                out.flush()
                if "API listen on" in line:
                    listening.set()
        listening.set()  # it ended: the wait below is over either way

    threading.Thread(target=read, daemon=True).start()
    try:
        if not listening.wait(timeout) or daemon.poll() is not None or not _answers():
            raise NoDocker(f"dockerd did not start: see {log}")
        yield
    finally:
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()


class NoBaseImage(Exception):
    """The daemon runs, but no base image could be had: a failure, not a skip."""


def base_image(workdir: Path) -> str:
    """The base image to build on: the default one if it is here or can be pulled, else
    a Debian bookworm made with debootstrap (about half a minute)."""
    for image in (DEFAULT_BASE, MADE_BASE):
        if _docker("image", "inspect", image).returncode == 0:
            return image
    if _docker("pull", DEFAULT_BASE, timeout=300).returncode == 0:
        return DEFAULT_BASE
    if shutil.which("debootstrap") is None:
        raise NoBaseImage(f"{DEFAULT_BASE} cannot be pulled and debootstrap is not installed")
    root = workdir / "rootfs"
    made = subprocess.run(
        ["debootstrap", "--variant=minbase", "bookworm", str(root), "http://deb.debian.org/debian"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if made.returncode != 0:
        raise NoBaseImage(f"debootstrap failed: {made.stderr[-1000:]}")
    packed = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(
        ["docker", "import", "-", MADE_BASE], stdin=packed.stdout, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    packed.wait()
    if imported.returncode != 0:
        raise NoBaseImage(f"docker import failed: {imported.stderr[-1000:]}")
    return MADE_BASE


def build_context(target: Path) -> Path:
    """This checkout's files (committed or not, as git sees them), plus the build-time
    inputs deploy/docker/build-inputs/README.md describes: the llama-cpp-python wheel pip
    built for this machine (else llama.cpp compiles in the image, ~10 minutes more) and
    the CA bundle this machine's pip uses."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
        text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    inputs = target / "deploy" / "docker" / "build-inputs"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(inputs / "wheels"),
         f"llama-cpp-python=={version('llama-cpp-python')}"],
        check=True, timeout=1800,
    )  # fmt: skip
    cert = pip_cert()
    if cert is not None:
        shutil.copy(cert, inputs / "ca.crt")
    return target


def pip_cert() -> Path | None:
    """The CA bundle this machine's pip verifies the registry with, if it names one."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout.splitlines()  # every file's settings, and the environment's (PIP_CERT)
    named = [os.environ.get("PIP_CERT", "")] + [
        value.strip("'") for key, _, value in (line.partition("=") for line in listed)
        if key.endswith(".cert")
    ]  # fmt: skip
    return next((Path(c) for c in named if c and Path(c).is_file()), None)
