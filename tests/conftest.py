"""Fixtures shared by every test layer: free ports, a real nats-server, tiny GGUF models."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from cortex_core.nats_server import EmbeddedNats


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A real nats-server with JetStream on a free port, for the whole session."""
    server = EmbeddedNats("127.0.0.1", -1, tmp_path_factory.mktemp("nats"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def nats_url(nats_server: EmbeddedNats) -> str:
    return nats_server.url


def write_catalogue(
    path: Path, models: list[dict[str, object]], aliases: dict[str, str] | None = None
) -> Path:
    """A models.toml for tests."""
    lines: list[str] = []
    for model in models:
        lines.append("[[models]]")
        for key, value in model.items():
            rendered = (
                f'"{value}"'
                if isinstance(value, str | Path)
                else str(value).lower()
                if isinstance(value, bool)
                else repr(value)
            )
            lines.append(f"{key} = {rendered}")
        lines.append("")
    if aliases:
        lines.append("[aliases]")
        lines.extend(f'"{a}" = "{t}"' for a, t in aliases.items())
    path.write_text("\n".join(lines) + "\n")
    return path
