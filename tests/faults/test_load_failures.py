"""A model whose GGUF is damaged: a clear error to every waiting request, one event, no
retry storm, and the neuron goes on serving its other models."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.fleet import running_fleet
from tests.support.tiny_gguf import TinyModel


async def test_a_truncated_gguf_fails_clearly_once_and_harms_nothing_else(
    tmp_path: Path, hello_model: TinyModel
) -> None:
    whole = hello_model.path.read_bytes()
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(whole[: len(whole) // 2])  # a download cut short
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"PK\x03\x04 a zip file, named .gguf" * 64)
    models = [
        {"id": "damaged", "path": str(truncated), "vram_mb": 100},
        {"id": "hello", "path": str(hello_model.path), "vram_mb": 100},
        {"id": "bogus", "path": str(bogus), "vram_mb": 100},
    ]
    async with running_fleet(tmp_path) as fleet:
        await fleet.start_neuron("n1", 1000, models)
        await fleet.start_scheduler()
        waiting = await asyncio.gather(*(fleet.ensure("damaged") for _ in range(6)))
        first = waiting[0]
        assert not first.ok and first.error is not None
        assert first.error.code == "load_failed"
        assert "truncated.gguf" in first.error.message
        assert all(r.error == first.error for r in waiting)
        # Asked again within the back-off: the same answer, no new load.
        assert (await fleet.ensure("damaged")).error == first.error
        assert len(fleet.model_events("damaged", "loading")) == 1
        assert len(fleet.model_events("damaged", "failed")) == 1
        assert len(fleet.scheduler_events("load_failed", "damaged")) == 1
        # The neuron is fine: its other model loads and is ready.
        assert (await fleet.ensure("hello")).ok
        # What the file is, where its header tells: not a GGUF at all, say.
        bogus = await fleet.ensure("bogus")
        assert bogus.error is not None and "is not a GGUF file" in bogus.error.message
