"""`cortex up`: the whole stack on one machine — embedded NATS (unless a URL is configured),
a scheduler, one local neuron and the gateway, each its own process.

Ctrl-C (or SIGTERM) stops everything in order: gateway, neuron, scheduler, NATS. A child that
dies on its own is reported by name and exit code, and takes the stack down with exit 1.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import nats
from nats.errors import NoServersError
from nats.errors import TimeoutError as NatsTimeout

from cortex_cli.demo import write_demo_catalogue
from cortex_core.bus import connect_options
from cortex_core.config import (
    ConfigError,
    Settings,
    load_catalogue,
    load_settings,
    parse_host_port,
)
from cortex_core.nats_server import EmbeddedNats, NatsServerError
from cortex_core.orphans import die_with_parent
from cortex_wire import subjects

SERVICES = ("scheduler", "neuron", "gateway")
READY_TIMEOUT_S = 60.0


@dataclass
class Supervisor:
    settings: Settings
    config_path: str | None
    env: dict[str, str]
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    stopping: bool = False
    failure: str = ""

    def say(self, text: str) -> None:
        print(f"cortex up: {text}", file=sys.stderr, flush=True)

    def spawn(self, name: str) -> None:
        command = [sys.executable, "-m", "cortex_cli.main", name]
        if self.config_path:
            command += ["--config", self.config_path]
        process = subprocess.Popen(
            command, env=self.env, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=die_with_parent,
        )  # fmt: skip
        self.children[name] = process
        threading.Thread(target=self._watch, args=(name, process), daemon=True).start()

    def _watch(self, name: str, process: subprocess.Popen[bytes]) -> None:
        code = process.wait()
        if not self.stopping and not self.failure:
            self.failure = f"{name} exited unexpectedly with code {code}"
            self.say(f"{self.failure}; stopping the stack")
            self.stop.set()

    def wait_for_gateway(self) -> bool:
        """Wait until /health answers (or a child fails, or we are told to stop)."""
        url = f"http://{_client_address(self.settings.gateway.listen)}/health?min_neurons=1&scheduler=true&wait=5"
        waited = 0.0
        while waited < READY_TIMEOUT_S:
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            if self.stop.wait(0.1):
                return False
            waited += 0.1
        self.failure = f"the gateway did not answer on {url} within {READY_TIMEOUT_S:g}s"
        return False

    def wait_for_heartbeat(self, node: str) -> bool:
        """Wait until `node`'s neuron heartbeats on the bus (or a child fails, or we are
        told to stop)."""

        async def heard() -> bool:
            client = await nats.connect(**connect_options(self.settings.nats))
            try:
                beats = await client.subscribe(subjects.heartbeat(node))
                while not self.stop.is_set():
                    try:
                        await beats.next_msg(timeout=0.5)
                        return True
                    except NatsTimeout:
                        continue  # look at the stop flag again
                return False
            finally:
                await client.close()

        try:
            return asyncio.run(asyncio.wait_for(heard(), READY_TIMEOUT_S))
        except (TimeoutError, OSError, NoServersError) as error:
            self.failure = f"no heartbeat from {node} within {READY_TIMEOUT_S:g}s ({error!r})"
            return False

    def stop_on_signals(self) -> None:
        """Ctrl-C (SIGINT) and SIGTERM stop the stack in order."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stop.set())

    def outcome(self) -> int:
        """Say how the stack ended: 1 if a child failed (and why), else 0."""
        if self.failure:
            self.say(f"stopped: {self.failure}")
            return 1
        self.say("stopped")
        return 0

    def shutdown(self) -> None:
        self.stopping = True
        for name in reversed(SERVICES):
            process = self.children.get(name)
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                self.say(f"{name} did not stop within 15s; killing it")
                process.kill()
                process.wait()


def taken_ports(settings: Settings) -> list[str]:
    """The listen addresses of this stack's services that another process holds, each as
    `key ADDRESS is in use`."""
    taken = []
    for key, listen in settings.listen_addresses():
        if not listen:
            continue
        host, port = parse_host_port(listen, key, "settings")
        if port == 0:
            continue
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the services do
            try:
                probe.bind((host, port))
            except OSError as error:
                taken.append(f"{key} {listen}: {error.strerror}")
    return taken


def _client_address(listen: str) -> str:
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    return f"{host}:{port}"


def _join(supervisor: Supervisor, url: str) -> int:
    """`cortex up --join URL`: this host's neuron alone, on an existing fleet's bus, with
    the credentials of [nats]; ready once its first heartbeat is on that bus."""
    settings = supervisor.settings
    settings.nats.url = supervisor.env["CORTEX_NATS_URL"] = url
    node = settings.neuron_name()
    supervisor.say(f"joining the fleet at {url} as neuron {node!r}")
    supervisor.stop_on_signals()
    try:
        supervisor.spawn("neuron")
        if supervisor.wait_for_heartbeat(node):
            supervisor.say(f"joined: {node} is on the bus (cortex status shows it)")
            supervisor.stop.wait()
    finally:
        supervisor.shutdown()
    return supervisor.outcome()


class StateDirBusy(RuntimeError):
    pass


_HELD: list[IO[str]] = []


def claim_state_dir(state_dir: Path) -> IO[str]:
    """Hold `state_dir` for this process (its embedded nats-server keeps JetStream there,
    which a second server on the same files would rebuild under the first): the lock
    file, held open for as long as the stack runs, or StateDirBusy naming the holder."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = open(state_dir / "cortex-up.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise StateDirBusy(f"{state_dir} is in use by cortex up (pid {holder})") from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    _HELD.append(lock)  # held (open) until the process ends
    return lock


def run_up(config_path: str | None, models_path: str | None, join: str | None = None) -> int:
    try:
        settings = load_settings(config_path)
        state_dir = settings.resolved_state_dir()
        if models_path:
            models = Path(models_path).resolve()
        elif settings.neuron.models:
            models = Path(settings.neuron.models).resolve()
        else:
            models = write_demo_catalogue(state_dir)
        catalogue = load_catalogue(models)
    except ConfigError as error:
        print(f"cortex up: config error: {error}", file=sys.stderr)
        return 2

    env = dict(os.environ, CORTEX_NEURON_MODELS=str(models), CORTEX_STATE_DIR=str(state_dir))
    supervisor = Supervisor(settings, config_path, env)
    if join:
        return _join(supervisor, join)
    nats: EmbeddedNats | None = None
    if not settings.nats.url:
        try:
            claim_state_dir(state_dir)
        except StateDirBusy as error:
            supervisor.say(f"{error}\n  (stop it, or give this stack its own state_dir)")
            return 1
    taken = taken_ports(settings)
    if taken:  # else /health of whatever holds the port would pass for this stack's
        supervisor.say(f"{'; '.join(taken)}\n  (stop what holds it, or set another port)")
        return 2
    if not settings.nats.url:
        nats = EmbeddedNats(
            settings.nats.embedded_host, settings.nats.embedded_port, state_dir / "nats",
            die_with_parent=True,  # started from the main thread, below
        )  # fmt: skip
        try:
            url = nats.start()
        except NatsServerError as error:
            supervisor.say(f"{error}\n  (set [nats] embedded_port, or -1 for any free port)")
            return 1
        env["CORTEX_NATS_URL"] = url
        supervisor.say(f"embedded NATS with JetStream on {url} (data in {state_dir / 'nats'})")
        if settings.nats.embedded_port < 0:
            # Operator commands find a fixed embedded_port from the same --config; a port
            # picked at random they can only be told.
            supervisor.say(f"operator commands: CORTEX_NATS_URL={url} cortex status")
    else:
        supervisor.say(f"using NATS at {settings.nats.url}")

    supervisor.stop_on_signals()
    try:
        for name in SERVICES:
            supervisor.spawn(name)
        if supervisor.wait_for_gateway():
            address = _client_address(settings.gateway.listen)
            supervisor.say(
                "ready\n"
                + json.dumps(
                    {
                        "api": f"http://{address}/v1",
                        "metrics": f"http://{_client_address(settings.gateway.metrics_listen)}/metrics",
                        "nats": env.get("CORTEX_NATS_URL", settings.nats.url),
                        "models": [m.id for m in catalogue.models],
                    },
                    indent=2,
                )
                + "\n  Ctrl-C stops everything."
            )
            supervisor.stop.wait()
    finally:
        supervisor.shutdown()
        if nats is not None:
            nats.stop()
    return supervisor.outcome()
