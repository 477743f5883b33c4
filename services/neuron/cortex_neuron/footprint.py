"""How much memory a model will take once loaded (pure): the catalogue's `vram_mb` when
given, else the GGUF size plus an allowance for the KV cache and compute buffers."""

from __future__ import annotations

MIB = 1024 * 1024


def estimate_footprint_mb(file_bytes: int, n_ctx: int, parallel: int = 1) -> int:
    # Without reading the GGUF header we do not know the layer shapes; a KV allowance of
    # 64 KiB per context token (f16 K+V of a ~1-4B model) errs on the safe side for small
    # models, and the catalogue's vram_mb overrides it for anything that matters.
    kv_mb = n_ctx * parallel * 64 // 1024
    return max(1, file_bytes // MIB + kv_mb + 64)


def footprint_mb(vram_mb: int, file_bytes: int, n_ctx: int, parallel: int = 1) -> int:
    return vram_mb if vram_mb > 0 else estimate_footprint_mb(file_bytes, n_ctx, parallel)
