"""Embeddings end to end: a tiny embedding GGUF (mean pooling, in its metadata) built by the
tests, served by a real neuron, asked through the official openai and ollama packages; every
vector checked against llama-cpp-python called directly on the same file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gguf
import httpx
import llama_cpp
import ollama
import openai
import pytest

from tests.conftest import write_catalogue
from tests.support.stack import RunningStack, running_stack, stack_settings
from tests.support.tiny_gguf import TinyModel, build_tiny_gguf

TEXTS = ["Hello there", "a b c a", "x", "Hello, world! How are you today?"]


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    folder = tmp_path_factory.mktemp("embedder")
    return build_tiny_gguf(folder / "embed.gguf", ("Hello",), pooling=gguf.PoolingType.MEAN)


@pytest.fixture(scope="module")
def reference(embedder: TinyModel) -> llama_cpp.Llama:
    return llama_cpp.Llama(model_path=str(embedder.path), embedding=True, n_ctx=512, verbose=False)


@pytest.fixture(scope="module")
def embed_stack(
    nats_server, embedder: TinyModel, hello_model: TinyModel, tmp_path_factory
) -> Iterator[RunningStack]:
    folder: Path = tmp_path_factory.mktemp("embed-stack")
    catalogue = write_catalogue(
        folder / "models.toml",
        [
            {"id": "embed", "path": str(embedder.path), "n_ctx": 512, "embedding": True},
            # A context llama.cpp pads (to 256): inputs stay within the 40 asked for.
            {"id": "embed-40", "path": str(embedder.path), "n_ctx": 40, "embedding": True},
            {"id": "chat", "path": str(hello_model.path), "n_ctx": 256},
        ],
    )
    with running_stack(stack_settings(nats_server.url, catalogue, node="embed-neuron")) as stack:
        yield stack


@pytest.fixture
def oai(embed_stack: RunningStack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{embed_stack.base_url}/v1", api_key="x", max_retries=0)


def expected(reference: llama_cpp.Llama, text: str) -> list[float]:
    return reference.embed(text, normalize=True)  # type: ignore[return-value]


def close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5


def test_openai_embeddings_match_llama_cpp(oai: openai.OpenAI, reference) -> None:
    # Unasked, the SDK asks for base64 and decodes it; asked, floats come as they are.
    for fmt in ({}, {"encoding_format": "float"}):
        done = oai.embeddings.create(model="embed", input=TEXTS, **fmt)  # type: ignore[arg-type]
        assert [d.index for d in done.data] == list(range(len(TEXTS)))
        for text, item in zip(TEXTS, done.data, strict=True):
            assert close(item.embedding, expected(reference, text)), (fmt, text)
        tokens = sum(len(reference.tokenize(t.encode(), add_bos=False)) for t in TEXTS)
        assert done.usage.prompt_tokens == done.usage.total_tokens == tokens
    one = oai.embeddings.create(model="embed", input="x")
    assert close(one.data[0].embedding, expected(reference, "x"))


def test_many_inputs_are_batched_and_stay_in_order(oai: openai.OpenAI, reference) -> None:
    texts = [f"word {n} " * (1 + n % 5) for n in range(40)]
    done = oai.embeddings.create(model="embed", input=texts)
    for text, item in zip(texts, done.data, strict=True):
        assert close(item.embedding, expected(reference, text)), text


def test_ollama_embed_matches_llama_cpp(embed_stack: RunningStack, reference) -> None:
    client = ollama.Client(host=embed_stack.base_url)
    done = client.embed(model="embed", input=TEXTS[:2])
    assert len(done.embeddings) == 2
    for text, vector in zip(TEXTS, done.embeddings, strict=False):
        assert close(list(vector), expected(reference, text))
    assert done.prompt_eval_count
    older = client.embeddings(model="embed", prompt=TEXTS[0])  # the one-prompt form
    assert close(list(older.embedding), expected(reference, TEXTS[0]))


def test_a_long_input_is_cut_for_ollama_and_refused_for_openai(
    embed_stack: RunningStack, oai: openai.OpenAI, reference
) -> None:
    long = "a b " * 400
    assert len(reference.tokenize(long.encode(), add_bos=False)) > 512  # the context
    llama = ollama.Client(host=embed_stack.base_url)
    # Ollama's default: cut at the end to fit (as llama-cpp-python's own truncate does)
    done = llama.embed(model="embed", input=[long, "x"])
    assert close(done.embeddings[0], expected(reference, long))
    assert close(done.embeddings[1], expected(reference, "x"))
    with pytest.raises(ollama.ResponseError) as refused:
        llama.embed(model="embed", input=long, truncate=False)
    assert refused.value.status_code == 400 and "takes at most 512" in refused.value.error
    with pytest.raises(openai.BadRequestError) as too_long:
        oai.embeddings.create(model="embed", input=long)
    assert too_long.value.code == "context_length_exceeded"


def test_a_context_llama_cpp_pads_takes_the_inputs_it_was_given_for(
    embed_stack: RunningStack, oai: openai.OpenAI, reference
) -> None:
    """n_ctx 40 is a context of 256 inside llama.cpp: an input of 41 to 256 tokens aborted
    the neuron (its batch held 40). Now the 40 hold, cut or refused as the API says."""
    long = "a b " * 30
    assert 40 < len(reference.tokenize(long.encode(), add_bos=False)) < 256
    llama = ollama.Client(host=embed_stack.base_url)
    cut = llama.embed(model="embed-40", input=long)  # Ollama cuts an input to fit
    assert cut.prompt_eval_count == 40
    with pytest.raises(openai.BadRequestError, match="takes at most 40"):
        oai.embeddings.create(model="embed-40", input=long)
    short = oai.embeddings.create(model="embed-40", input="x").data[0].embedding
    assert close(short, expected(reference, "x"))


def test_the_wrong_kind_of_model_gets_a_clear_400(
    oai: openai.OpenAI, embed_stack: RunningStack
) -> None:
    with pytest.raises(openai.BadRequestError, match="not an embedding model"):
        oai.embeddings.create(model="chat", input="x")
    with pytest.raises(openai.BadRequestError, match="is an embedding model"):
        oai.chat.completions.create(model="embed", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(ollama.ResponseError, match="is an embedding model") as raised:
        ollama.Client(host=embed_stack.base_url).chat(
            model="embed", messages=[{"role": "user", "content": "x"}]
        )
    assert raised.value.status_code == 400
    with pytest.raises(openai.BadRequestError, match="token-id"):
        oai.embeddings.create(model="embed", input=[[1, 2, 3]])
    with pytest.raises(openai.BadRequestError, match="must not be empty"):
        oai.embeddings.create(model="embed", input=[])


def test_models_list_says_which_models_embed(embed_stack: RunningStack) -> None:
    body = httpx.get(f"{embed_stack.base_url}/v1/models").json()
    capabilities = {m["id"]: m.get("capabilities", []) for m in body["data"]}
    assert "embeddings" in capabilities["embed"]
    assert "embeddings" not in capabilities["chat"]
