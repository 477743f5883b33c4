from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import write_catalogue
from tests.support.stack import RunningStack, running_stack, stack_settings
from tests.support.tiny_gguf import TinyModel


@pytest.fixture(scope="session")
def stack(
    nats_server,
    hello_model: TinyModel,
    endless_model: TinyModel,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningStack]:
    folder: Path = tmp_path_factory.mktemp("stack")
    models = write_catalogue(
        folder / "models.toml",
        [
            {"id": "tiny-hello", "path": str(hello_model.path), "n_ctx": 256},
            {"id": "tiny-missing", "path": str(folder / "does-not-exist.gguf"), "n_ctx": 256},
            # Same weights, its own id: only the single-flight test ever loads it.
            {"id": "tiny-cold", "path": str(hello_model.path), "n_ctx": 256},
            {"id": "tiny-endless", "path": str(endless_model.path), "n_ctx": 8192},
            # More memory than the neuron's 4096 MiB budget: no placement is possible.
            {"id": "tiny-huge", "path": str(hello_model.path), "vram_mb": 999_999},
        ],
        aliases={"hello": "tiny-hello"},
    )
    with running_stack(stack_settings(nats_server.url, models)) as running:
        yield running
