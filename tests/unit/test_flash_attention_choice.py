"""Which attention llama.cpp runs: the profile decides; unset, llama.cpp's own choice when
layers go to a GPU, and plain attention on the CPU (where flash attention slowed every step
under 64 tokens: bench `attention`)."""

from __future__ import annotations

import llama_cpp.llama_cpp as C

from cortex_core.config import ModelProfile
from cortex_neuron.llama_backend import flash_attention


def profile(**fields: object) -> ModelProfile:
    return ModelProfile(id="m", path="m.gguf", **fields)  # type: ignore[arg-type]


def test_unset_is_off_on_the_cpu_and_llama_cpps_choice_on_a_gpu() -> None:
    assert flash_attention(profile(), gpu_offload=False) == C.LLAMA_FLASH_ATTN_TYPE_DISABLED
    assert flash_attention(profile(n_gpu_layers=0), True) == C.LLAMA_FLASH_ATTN_TYPE_DISABLED
    assert flash_attention(profile(), gpu_offload=True) == C.LLAMA_FLASH_ATTN_TYPE_AUTO
    assert flash_attention(profile(n_gpu_layers=20), True) == C.LLAMA_FLASH_ATTN_TYPE_AUTO


def test_the_profile_decides_when_it_says() -> None:
    assert flash_attention(profile(flash_attn=True), False) == C.LLAMA_FLASH_ATTN_TYPE_ENABLED
    assert flash_attention(profile(flash_attn=False), True) == C.LLAMA_FLASH_ATTN_TYPE_DISABLED
