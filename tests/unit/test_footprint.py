from pathlib import Path

import gguf
import pytest

from cortex_neuron.footprint import estimate_footprint_mb, footprint_mb, kv_cache_mb
from cortex_neuron.gguf_header import GGUFError, read_metadata
from tests.support.tiny_gguf import build_tiny_gguf


def test_header_reader_sees_what_the_writer_wrote(tmp_path: Path) -> None:
    tiny = build_tiny_gguf(tmp_path / "t.gguf", ("Hi",), n_ctx=321)
    metadata = read_metadata(tiny.path)
    assert metadata["general.architecture"] == "llama"
    assert metadata["llama.context_length"] == 321
    assert metadata["llama.block_count"] == 1
    assert metadata["llama.attention.head_count_kv"] == 1
    assert metadata["tokenizer.ggml.model"] == "gpt2"
    assert metadata["tokenizer.chat_template"] == tiny.chat_template
    assert len(metadata["tokenizer.ggml.tokens"]) >= 256


def test_long_arrays_are_skipped_not_decoded(tmp_path: Path) -> None:
    writer = gguf.GGUFWriter(str(tmp_path / "a.gguf"), "llama")
    writer.add_array("test.long", list(range(5000)))
    writer.add_array("test.words", [f"w{i}" for i in range(5000)])
    writer.add_uint32("test.after", 7)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    metadata = read_metadata(tmp_path / "a.gguf")
    assert metadata["test.long"] is None and metadata["test.words"] is None
    assert metadata["test.after"] == 7


def test_kv_cache_from_the_model_shape() -> None:
    shape = {
        "general.architecture": "llama",
        "llama.block_count": 30,
        "llama.embedding_length": 576,
        "llama.attention.head_count": 9,
        "llama.attention.head_count_kv": 3,
    }
    # 2048 tokens x 30 layers x 3 heads x (64 + 64) dims x 2 bytes = 45 MiB
    assert kv_cache_mb(shape, 2048) == 45
    assert kv_cache_mb({**shape, "llama.attention.head_count_kv": [1, 3, 2]}, 2048) == 45
    assert kv_cache_mb({"general.architecture": "x"}, 2048) is None


def test_footprint_prefers_the_catalogue_then_estimates() -> None:
    assert footprint_mb(5000, 10 * 2**30, 8192, {}) == 5000
    shape = {
        "general.architecture": "a",
        "a.block_count": 1,
        "a.embedding_length": 64,
        "a.attention.head_count": 1,
    }
    # 100 MiB of weights + 1 MiB of KV (4096 x 128 x 2 B) + 64 MiB compute allowance
    assert estimate_footprint_mb(100 * 2**20, 4096, shape) == 165


def test_not_a_gguf_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "x.gguf"
    bogus.write_bytes(b"PK\x03\x04 zip, not gguf")
    with pytest.raises(GGUFError, match="not a GGUF file"):
        read_metadata(bogus)
    truncated = tmp_path / "t.gguf"
    truncated.write_bytes(b"GGUF\x03\x00\x00\x00\x01")
    with pytest.raises(GGUFError, match="truncated"):
        read_metadata(truncated)


def test_each_parallel_slot_adds_its_own_kv_cache(tmp_path: Path) -> None:
    from cortex_core.config import ModelProfile
    from cortex_neuron.model_footprint import profile_footprint as _footprint

    tiny = build_tiny_gguf(tmp_path / "t.gguf", ("Hi",), n_ctx=8192)
    one = _footprint(ModelProfile(id="m", path=str(tiny.path), n_ctx=8192))
    four = _footprint(ModelProfile(id="m", path=str(tiny.path), n_ctx=8192, parallel=4))
    kv = kv_cache_mb(read_metadata(tiny.path), 8192)
    assert kv is not None and kv > 0
    assert four - one == 3 * kv


def test_metadata_no_model_has_leaves_the_footprint_unknown_not_the_neuron_down(
    tmp_path: Path,
) -> None:
    """(A file put in place while the neuron runs is read by its heartbeat: an exception
    there would stop the heartbeats.)"""
    import gguf

    from cortex_core.config import ModelProfile
    from cortex_neuron.model_footprint import profile_footprint

    path = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.add_context_length(64)
    writer.add_embedding_length(64)
    writer.add_head_count([0, 0])  # per layer
    writer.add_head_count_kv([0, 0])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert profile_footprint(ModelProfile(id="m", path=str(path), n_ctx=64)) == 0
