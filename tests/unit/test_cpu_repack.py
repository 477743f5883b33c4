"""Whether llama.cpp repacks the CPU's weights: the profile decides, and unset, not where
llama.cpp would use AMX (its AMX matrix multiply crashed decoding batches of several
sequences on a Sapphire Rapids Xeon)."""

from __future__ import annotations

from cortex_core.config import ModelProfile
from cortex_neuron.llama_backend import repack_weights

AMX = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | OPENMP = 1 | REPACK = 1 | "
AVX2 = "CPU : SSE3 = 1 | AVX2 = 1 | FMA = 1 | OPENMP = 1 | REPACK = 1 | "


def profile(**fields: object) -> ModelProfile:
    return ModelProfile(id="m", path="m.gguf", **fields)  # type: ignore[arg-type]


def test_unset_repacks_except_where_llama_cpp_would_use_amx() -> None:
    assert repack_weights(profile(), AVX2) is True
    assert repack_weights(profile(), AMX) is False


def test_the_profile_decides_when_it_says() -> None:
    assert repack_weights(profile(cpu_repack=True), AMX) is True
    assert repack_weights(profile(cpu_repack=False), AVX2) is False
