"""A catalogue model's footprint: what the catalogue says, else an estimate from its GGUF
header (read from disk; the arithmetic is `footprint.footprint_mb`)."""

from __future__ import annotations

import os
from pathlib import Path

import structlog

from cortex_core.config import Catalogue, ModelProfile
from cortex_neuron.footprint import footprint_mb
from cortex_neuron.gguf_header import read_metadata

log = structlog.get_logger("neuron")


def profile_footprint(profile: ModelProfile) -> int:
    """The catalogue's vram_mb, else an estimate from the GGUF (0 if it cannot be read:
    the load will fail and say why)."""
    if profile.vram_mb > 0 or profile.script is not None:
        return profile.vram_mb
    try:
        size = Path(profile.path).stat().st_size
        metadata = read_metadata(profile.path)
        return footprint_mb(0, size, profile.n_ctx * max(1, profile.parallel), metadata)
    except Exception as error:  # unreadable, or metadata no model has (a head count of 0)
        log.warning("footprint_unknown", model=profile.id, error=str(error))
        return 0


def file_stamps(catalogue: Catalogue) -> dict[str, tuple[int, int] | None]:
    """Each catalogue model's file as it is now (modification time, size; None: not there,
    or scripted), to tell when one was put in place or replaced."""
    stamps: dict[str, tuple[int, int] | None] = {}
    for model in catalogue.models:
        try:
            stat = os.stat(model.path) if model.script is None else None
        except OSError:
            stat = None
        stamps[model.id] = (stat.st_mtime_ns, stat.st_size) if stat else None
    return stamps
