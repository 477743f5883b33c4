"""How much memory a model will take once loaded (pure): the catalogue's `vram_mb` when
given, else the GGUF size plus its KV cache for `n_ctx` plus a compute allowance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MIB = 1024 * 1024
# KV cache elements are f16 by default in llama.cpp.
KV_BYTES = 2


def kv_cache_mb(metadata: Mapping[str, Any], n_ctx: int) -> int | None:
    """K+V cache size for `n_ctx` tokens, from the GGUF header; None if it does not say."""
    arch = metadata.get("general.architecture")
    layers = metadata.get(f"{arch}.block_count")
    embd = metadata.get(f"{arch}.embedding_length")
    heads = metadata.get(f"{arch}.attention.head_count")
    kv_heads = metadata.get(f"{arch}.attention.head_count_kv", heads)
    if not (isinstance(layers, int) and isinstance(embd, int) and heads):
        return None
    # Some architectures give per-layer values; the widest layer bounds the rest.
    heads = max(heads) if isinstance(heads, list) else heads
    kv_heads = max(kv_heads) if isinstance(kv_heads, list) else kv_heads
    head_dim = embd // heads
    k_dim = metadata.get(f"{arch}.attention.key_length", head_dim)
    v_dim = metadata.get(f"{arch}.attention.value_length", head_dim)
    total = n_ctx * layers * kv_heads * (k_dim + v_dim) * KV_BYTES
    return -(-total // MIB)


def estimate_footprint_mb(file_bytes: int, n_ctx: int, metadata: Mapping[str, Any]) -> int:
    kv = kv_cache_mb(metadata, n_ctx)
    if kv is None:  # unknown shape: assume 64 KiB per token, generous for small models
        kv = n_ctx * 64 // 1024
    compute = max(64, file_bytes // MIB // 20)
    return file_bytes // MIB + kv + compute


def footprint_mb(vram_mb: int, file_bytes: int, n_ctx: int, metadata: Mapping[str, Any]) -> int:
    return vram_mb if vram_mb > 0 else estimate_footprint_mb(file_bytes, n_ctx, metadata)
