"""What a neuron announces of each catalogue model, read from its GGUF at start (header,
tensor table, vocabulary): the same capabilities and dialect the load reads, a stable
digest, and Ollama's details."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import gguf
import pytest

from cortex_core.config import Catalogue, ModelProfile, ScriptProfile
from cortex_neuron.catalogue_facts import ModelFacts, dialect_of, llama_vocabulary, model_facts
from cortex_neuron.gguf_header import read_header
from cortex_neuron.heartbeat import catalogue_entries
from cortex_wire import codec
from cortex_wire.messages import CatalogueEntry
from tests.support.tiny_gguf import IM_END, IM_START, TinyModel, build_tiny_gguf

HELLO = ("Hello", ",", " world", "!")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TinyModel]:
    folder = tmp_path_factory.mktemp("facts")
    return {
        # <think> and <tool_call> pairs in the vocabulary: it reasons and calls tools
        "full": build_tiny_gguf(folder / "full.gguf", HELLO, n_ctx=384),
        "plain": build_tiny_gguf(folder / "plain.gguf", HELLO, specials=(IM_START, IM_END)),
        "embed": build_tiny_gguf(folder / "embed.gguf", ("Hi",), pooling=gguf.PoolingType.MEAN),
    }


def facts(model: TinyModel, **profile: object) -> ModelFacts:
    return model_facts(ModelProfile(id="m", path=str(model.path), **profile))  # type: ignore[arg-type]


def test_the_tensor_table_is_read_as_the_gguf_package_reads_it(
    models: dict[str, TinyModel],
) -> None:
    path = models["full"].path
    header = read_header(path)
    reference = gguf.GGUFReader(path)
    assert [t.name for t in header.tensors] == [t.name for t in reference.tensors]
    assert [t.elements for t in header.tensors] == [int(t.n_elements) for t in reference.tensors]
    assert header.data_start == reference.data_offset
    assert facts(models["full"]).parameter_count == sum(t.elements for t in header.tensors)


def test_capabilities_follow_the_vocabulary_and_the_kind(models: dict[str, TinyModel]) -> None:
    assert facts(models["full"]).capabilities == ("completion", "tools", "thinking")
    assert facts(models["plain"]).capabilities == ("completion",)
    embedding = facts(models["embed"], embedding=True)
    assert embedding.capabilities == ("embedding",) and embedding.dialect == {}


def test_the_dialect_is_the_one_the_load_reads(models: dict[str, TinyModel]) -> None:
    full = facts(models["full"])
    with llama_vocabulary(str(models["full"].path)) as vocabulary:
        assert full.dialect == dialect_of(vocabulary).summary()
    assert full.dialect["reasoning"] == "<think>…</think>"
    assert full.reasoning_markers == ("<think>", "</think>")
    assert facts(models["plain"]).dialect["tools"] == ""


def test_what_the_header_says(models: dict[str, TinyModel]) -> None:
    full = facts(models["full"])
    assert (full.architecture, full.context_length, full.quantization) == ("llama", 384, "F32")
    assert full.embedding_length == models["full"].n_embd


def test_the_digest_names_the_contents_not_the_place(
    models: dict[str, TinyModel], tmp_path: Path
) -> None:
    digest = facts(models["full"]).digest
    assert len(digest) == 64 and int(digest, 16) >= 0
    copy = tmp_path / "elsewhere.gguf"
    shutil.copy(models["full"].path, copy)
    assert model_facts(ModelProfile(id="other", path=str(copy))).digest == digest
    assert facts(models["plain"]).digest != digest


def test_the_file_s_size_on_disk_and_when_it_changed(
    models: dict[str, TinyModel], tmp_path: Path
) -> None:
    """What Ollama lists as a model's size and modified_at (not its memory footprint)."""
    copy = tmp_path / "dated.gguf"
    shutil.copy(models["full"].path, copy)
    os.utime(copy, (1_700_000_000.5, 1_700_000_000.5))
    dated = model_facts(ModelProfile(id="dated", path=str(copy)))
    assert (dated.file_size, dated.file_mtime) == (copy.stat().st_size, 1_700_000_000.5)
    catalogue = Catalogue(models=[ModelProfile(id="dated", path=str(copy))])
    [entry] = catalogue_entries(catalogue, {"dated": 10})
    assert (entry.file_size, entry.file_mtime) == (copy.stat().st_size, 1_700_000_000.5)


def test_what_cannot_be_read_is_left_unknown(tmp_path: Path) -> None:
    assert model_facts(ModelProfile(id="gone", path=str(tmp_path / "none.gguf"))) == ModelFacts()
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a gguf at all")
    assert model_facts(ModelProfile(id="bogus", path=str(bogus))) == ModelFacts()
    # A header whose first key claims 2**40 bytes (or more than an index can hold): this
    # model's facts are unknown, and the neuron still starts.
    for length in (2**40, 2**63 + 5):
        corrupt = tmp_path / f"corrupt-{length}.gguf"
        corrupt.write_bytes(b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, length))
        assert model_facts(ModelProfile(id="corrupt", path=str(corrupt))) == ModelFacts()


def test_a_scripted_model_is_probed_like_a_file() -> None:
    scripted = model_facts(ModelProfile(id="s", script=ScriptProfile()))
    assert scripted.capabilities == ("completion", "tools", "thinking")
    assert len(scripted.digest) == 64


def test_entries_carry_the_facts_and_older_peers_still_decode_them(
    models: dict[str, TinyModel],
) -> None:
    catalogue = Catalogue(models=[ModelProfile(id="full", path=str(models["full"].path))])
    [entry] = catalogue_entries(catalogue, {"full": 10})
    assert entry.capabilities == ["completion", "tools", "thinking"]
    assert entry.architecture == "llama" and len(entry.digest) == 64
    # an entry without the new fields (an older neuron's) decodes with them empty
    old = codec.decode(b'{"id": "x", "n_ctx": 8, "footprint_mb": 1}', CatalogueEntry)
    assert (old.capabilities, old.digest, old.dialect) == ([], "", {})
    assert (old.file_size, old.file_mtime) == (0, 0.0)


def test_the_gateway_s_penalty_window_is_the_neuron_s() -> None:
    from cortex_gateway.ollama_api import PENALTY_WINDOW
    from cortex_neuron.llama_backend import PENALTY_WINDOW as NEURON_WINDOW

    assert PENALTY_WINDOW == NEURON_WINDOW
