"""Fixtures shared by every test layer: free ports, a real nats-server, tiny GGUF models."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from cortex_core.nats_server import EmbeddedNats
from tests.support.tiny_gguf import TinyModel, build_tiny_gguf


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


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table, e.g. a model's script
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def write_catalogue(
    path: Path, models: list[dict[str, object]], aliases: dict[str, str] | None = None
) -> Path:
    """A models.toml for tests."""
    lines: list[str] = []
    for model in models:
        lines.append("[[models]]")
        for key, value in model.items():
            lines.append(f"{key} = {toml_value(value)}")
        lines.append("")
    if aliases:
        lines.append("[aliases]")
        lines.extend(f'"{a}" = "{t}"' for a, t in aliases.items())
    path.write_text("\n".join(lines) + "\n")
    return path


HELLO = ("Hello", ",", " world", "!")


@pytest.fixture(scope="session")
def hello_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return build_tiny_gguf(tmp_path_factory.mktemp("models") / "hello.gguf", HELLO)


@pytest.fixture(scope="session")
def endless_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """Greedy output "tick tocktick tock…" until a limit or a cancellation stops it."""
    path = tmp_path_factory.mktemp("endless") / "endless.gguf"
    return build_tiny_gguf(path, ("tick", " tock"), endless=True, n_ctx=8192)
