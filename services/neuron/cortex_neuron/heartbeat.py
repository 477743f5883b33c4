"""Building the neuron's heartbeat from its state (pure, but for reading each catalogue
model's GGUF once, when its entries are first built)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from cortex_core.config import Catalogue, ModelProfile
from cortex_neuron.admission import limits
from cortex_neuron.catalogue_facts import ModelFacts, model_facts
from cortex_wire.messages import CatalogueEntry, Device, Heartbeat, LoadedModel


def catalogue_entries(
    catalogue: Catalogue,
    footprints: dict[str, int],
    facts: Callable[[ModelProfile], ModelFacts] = model_facts,
    queue_depth: int = 64,
) -> list[CatalogueEntry]:
    """Each model's entry: what its profile says (and the neuron's `queue_depth`), and
    what `facts` reads of its file."""
    entries = []
    for m in catalogue.models:
        known = facts(m)
        entries.append(
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
                digest=known.digest,
                architecture=known.architecture,
                parameter_count=known.parameter_count,
                context_length=known.context_length,
                embedding_length=known.embedding_length,
                quantization=known.quantization,
                capabilities=list(known.capabilities),
                dialect=dict(known.dialect),
                reasoning_markers=list(known.reasoning_markers),
                file_size=known.file_size,
                file_mtime=known.file_mtime,
                max_requests=sum(limits(m, queue_depth)),
            )
        )
    return entries


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
