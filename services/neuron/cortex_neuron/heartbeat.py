"""Building the neuron's heartbeat from its state (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cortex_core.config import Catalogue
from cortex_wire.messages import CatalogueEntry, Device, Heartbeat, LoadedModel


def catalogue_entries(catalogue: Catalogue, footprints: dict[str, int]) -> list[CatalogueEntry]:
    return [
        CatalogueEntry(
            id=m.id,
            n_ctx=m.n_ctx,
            footprint_mb=footprints[m.id],
            min_devices=m.min_devices,
            min_device_vram_mb=m.min_device_vram_mb,
            pinned_on=list(m.pinned_on),
            residency_priority=m.residency_priority,
            parallel=m.parallel,
            embedding=m.embedding,
        )
        for m in catalogue.models
    ]


def build_heartbeat(
    *,
    node: str,
    instance: str,
    seq: int,
    now: float,
    interval_s: float,
    devices: Sequence[Device],
    memory_budget_mb: int,
    models: Iterable[LoadedModel],
    catalogue: list[CatalogueEntry],
    aliases: dict[str, str],
    cycles: int = 0,
) -> Heartbeat:
    return Heartbeat(
        node=node,
        instance=instance,
        seq=seq,
        sent_at=now,
        interval_s=interval_s,
        devices=list(devices),
        memory_budget_mb=memory_budget_mb,
        models=sorted(models, key=lambda m: m.id),
        catalogue=catalogue,
        aliases=dict(aliases),
        cycles=cycles,
    )
