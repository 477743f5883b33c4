"""Ollama's dialect, pure: what its clients send (nulls, neutral options, a prefill), what
its listings say of a model (digest, details, model_info, capabilities: from the catalogue,
loaded or not), its words for refusals, and Anthropic's model-list pages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cortex_core.config import GatewaySettings
from cortex_core.fleet import CatalogueView
from cortex_gateway import embeddings, ollama_api
from cortex_gateway.errors import ApiError
from cortex_gateway.gateway_state import (
    ModelNotFound,
    anthropic_models_page,
    catalogue_capabilities,
)
from cortex_wire.messages import CatalogueEntry, LoadedModel

SETTINGS = GatewaySettings()
USER = {"role": "user", "content": "Say hello"}
DIGEST = "ab" * 32
DIALECT = {"reasoning": "<think>…</think>", "tools": "json <tool_call> … </tool_call>"}


def entry(**fields: Any) -> CatalogueEntry:
    known: dict[str, Any] = {
        "digest": DIGEST, "architecture": "llama", "parameter_count": 134_515_008,
        "context_length": 8192, "embedding_length": 576, "quantization": "Q4_1",
        "capabilities": ["completion", "tools", "thinking"], "dialect": DIALECT,
    }  # fmt: skip
    return CatalogueEntry(**{"id": "m", "n_ctx": 2048, "footprint_mb": 100, **known, **fields})


def chat(**body: Any) -> Any:
    return ollama_api.chat_turn(json.dumps({"model": "m", **body}).encode(), SETTINGS)


# --- requests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"mirostat": 0}, {"mirostat": 0, "mirostat_tau": 5.0, "mirostat_eta": 0.1},
     {"mirostat_tau": 5.0}, {"typical_p": 1.0}, {"tfs_z": 1}, {"repeat_last_n": 64},
     {"repeat_last_n": 256, "repeat_penalty": 1.0}, {"penalize_newline": False},
     {"penalize_newline": True}],
)  # fmt: skip
def test_options_at_values_that_change_nothing_are_taken(options: dict[str, Any]) -> None:
    plain = ollama_api.sampling_params({}, None)
    taken = ollama_api.sampling_params(options, None)
    for name in ("temperature", "top_p", "top_k", "min_p", "presence_penalty"):
        assert getattr(taken, name) == getattr(plain, name)
    assert taken.repeat_penalty == options.get("repeat_penalty", plain.repeat_penalty)


@pytest.mark.parametrize(
    "options",
    [{"mirostat": 2}, {"mirostat": 1, "mirostat_tau": 5.0}, {"typical_p": 0.7},
     {"tfs_z": 0.9}, {"repeat_last_n": 128}, {"repeat_last_n": 0}, {"mirostat": True},
     {"num_gqa_whatever": 1}],
)  # fmt: skip
def test_options_that_would_change_the_answer_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as refused:
        ollama_api.sampling_params(options, None)
    assert refused.value.status == 400
    assert refused.value.param is not None and refused.value.param.startswith("options.")


def test_an_option_of_the_wrong_type_is_named_as_every_field_is() -> None:
    with pytest.raises(ApiError) as refused:
        ollama_api.sampling_params({"num_predict": "10"}, None)
    assert refused.value.param == "options.num_predict"
    assert refused.value.message == "options.num_predict: Expected `int | null`, got `str`"


def test_a_final_assistant_message_is_continued() -> None:
    prefill = [USER, {"role": "assistant", "content": "The capital of France is"}]
    assert chat(messages=prefill).ask.continue_final
    assert not chat(messages=[USER]).ask.continue_final
    assert not chat(messages=[*prefill, USER]).ask.continue_final


def test_null_means_the_default() -> None:
    turn = chat(
        messages=[{"role": "user", "content": None, "images": None, "tool_calls": None},
                  {"role": "assistant", "content": None, "tool_calls": [
                      {"function": {"name": "f", "arguments": None}}]}],
        stream=None, options=None, tools=None, think=None, format=None, keep_alive=None,
    )  # fmt: skip
    assert turn.stream and turn.ask.messages[0].content == ""
    assert turn.ask.messages[1].tool_calls[0].arguments == "{}"
    assert chat(messages=None).residency_only is not None  # nothing to run: a load
    generate = ollama_api.generate_turn(
        b'{"model": "m", "prompt": "hi", "raw": null, "stream": null, "system": null}',
        SETTINGS,
    )
    assert generate.stream and generate.ask.messages[-1].content == "hi"
    asked = embeddings.ollama_request(b'{"model": "m", "input": "x", "truncate": null}')
    assert asked.truncate and asked.texts == ["x"]


@pytest.mark.parametrize("body", [{}, {"input": None}, {"input": ""}, {"input": []}])
def test_embed_without_input_asks_for_nothing_but_the_model(body: dict[str, Any]) -> None:
    assert embeddings.ollama_request(json.dumps({"model": "m", **body}).encode()).texts == []
    legacy = embeddings.ollama_legacy_request(b'{"model": "m", "prompt": ""}')
    assert legacy.texts == []


def test_what_a_model_cannot_do_is_refused_in_ollamas_words() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    plain = ["completion"]
    with pytest.raises(ApiError, match='"m" does not support tools') as refused:
        ollama_api.check_capabilities(chat(messages=[USER], tools=tools), plain)
    assert refused.value.status == 400
    with pytest.raises(ApiError, match='"m" does not support thinking'):
        ollama_api.check_capabilities(chat(messages=[USER], think=True), plain)
    with pytest.raises(ApiError, match="does not support thinking"):
        ollama_api.check_capabilities(chat(messages=[USER], think="high"), plain)
    ollama_api.check_capabilities(chat(messages=[USER], think=False), plain)
    full = ["completion", "tools", "thinking"]
    ollama_api.check_capabilities(chat(messages=[USER], tools=tools, think=True), full)
    # capabilities not known (an older neuron): nothing is refused
    ollama_api.check_capabilities(chat(messages=[USER], tools=tools, think=True), [])


def test_an_unknown_model_is_not_found_in_ollamas_words() -> None:
    error = ModelNotFound("nope")
    assert error.status == 404
    assert ollama_api.error_body(error)["error"].startswith("model 'nope' not found")
    assert "does not exist" in error.openai_body()["error"]["message"]  # OpenAI's unchanged


def test_managing_models_is_not_supported_here_and_says_what_is() -> None:
    for path in ("/api/push", "/api/delete", "/api/blobs/sha256:00"):
        error = ollama_api.not_supported(path)
        assert error.status == 501
        assert "models.toml" in error.message and "cortex load" in error.message
        # -1 from anyone is what already happens; a pin is an operator's (cortex pin)
        assert "keep_alive -1 with an admin key" in error.message
        assert "cortex pin MODEL" in error.message


def test_a_request_that_names_no_model_is_told_the_model_is_required() -> None:
    body = json.dumps({"model": "", "messages": [USER], "prompt": "hi", "input": "x"}).encode()
    asks = (
        lambda: ollama_api.chat_turn(body, SETTINGS),
        lambda: ollama_api.generate_turn(body, SETTINGS),
        lambda: embeddings.ollama_request(body),
        lambda: embeddings.ollama_legacy_request(body),
        lambda: ollama_api.required_model(None),  # /api/show {}
    )
    for ask in asks:
        with pytest.raises(ApiError) as refused:
            ask()
        assert (refused.value.status, refused.value.param) == (400, "model")
        assert ollama_api.error_body(refused.value) == {"error": "model is required"}


# --- the model list ------------------------------------------------------------------------


def test_listings_carry_a_digest_and_the_details() -> None:
    view = CatalogueView(entry=entry())
    [listed] = ollama_api.tags_body({"m": view}, {})["models"]
    assert listed["digest"] == DIGEST
    assert listed["details"] == {
        "parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
        "parameter_size": "134.52M", "quantization_level": "Q4_1",
    }  # fmt: skip
    # an entry without a digest (an older neuron's) still gets a stable one of 64 hex digits
    bare = CatalogueView(entry=CatalogueEntry(id="m", n_ctx=8, footprint_mb=1))
    first = ollama_api.tags_body({"m": bare}, {})["models"][0]["digest"]
    assert len(first) == 64 and int(first, 16) >= 0
    assert first == ollama_api.tags_body({"m": bare}, {})["models"][0]["digest"]


def test_listings_size_the_file_on_disk_and_say_when_it_changed() -> None:
    mtime = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC).timestamp()
    view = CatalogueView(
        entry=entry(file_size=270_000_123, file_mtime=mtime),
        states={"n": LoadedModel(id="m", state="ready", footprint_mb=300)},
    )
    [listed] = ollama_api.tags_body({"m": view}, {})["models"]
    assert (listed["size"], listed["modified_at"]) == (270_000_123, "2025-03-04T05:06:07Z")
    assert ollama_api.show_body("m", view)["modified_at"] == "2025-03-04T05:06:07Z"
    [running] = ollama_api.ps_body({"m": view}, {}, on_gpu=())["models"]
    assert running["size"] == 300 * 1024 * 1024  # what is loaded: its memory
    # an older neuron's entry says neither: the footprint, and the epoch
    [old] = ollama_api.tags_body({"m": CatalogueView(entry=entry())}, {})["models"]
    assert (old["size"], old["modified_at"]) == (100 * 1024 * 1024, "1970-01-01T00:00:00Z")


def test_size_vram_is_the_size_on_a_gpu_and_none_of_it_on_a_cpu() -> None:
    ready = LoadedModel(id="m", state="ready", footprint_mb=300)
    view = CatalogueView(entry=entry(), states={"cpu-host": ready, "gpu-host": ready})
    running = ollama_api.ps_body({"m": view}, {}, on_gpu={"gpu-host"})["models"]
    vram = {m["node"]: (m["size"], m["size_vram"]) for m in running}
    size = 300 * 1024 * 1024
    assert vram == {"cpu-host": (size, 0), "gpu-host": (size, size)}  # "100% CPU" / "100% GPU"


def test_untagged_names_are_listed_as_latest() -> None:
    catalogue = {
        name: CatalogueView(entry=entry(id=name))
        for name in ("m", "org/m:q4", "plain", "host:8080/x")
    }
    aliases = {"short": "m", "plain:latest": "m", "claude-*": "m"}
    tags = [(t["name"], t["model"]) for t in ollama_api.tags_body(catalogue, aliases)["models"]]
    assert [name for name, model in tags if name == model] == [
        "host:8080/x:latest", "m:latest", "org/m:q4",
        "plain",  # plain:latest names another model (an alias): only `plain` reaches this one
        "plain:latest", "short:latest",
    ]  # fmt: skip
    assert len(tags) == 6
    running = {**catalogue, "m": CatalogueView(entry=entry(), states={"n": LoadedModel(
        id="m", state="ready")})}  # fmt: skip
    [loaded] = ollama_api.ps_body(running, aliases, on_gpu=())["models"]
    assert (loaded["name"], loaded["model"]) == ("m:latest", "m:latest")


@pytest.mark.parametrize(
    ("count", "size"),
    [(134_515_008, "134.52M"), (8_030_261_248, "8.0B"), (7_000_000_000, "7B"), (0, "")],
)
def test_parameter_sizes_as_ollama_writes_them(count: int, size: str) -> None:
    assert ollama_api.parameter_size(count) == size


def test_show_has_the_keys_clients_read_without_looking() -> None:
    info = ollama_api.show_body("m", CatalogueView(entry=entry()))["model_info"]
    arch = info["general.architecture"]
    assert arch == "llama" and info["general.parameter_count"] == 134_515_008
    # The context served (2048), not the 8192 it was trained on: clients size prompts by it.
    assert (info[f"{arch}.context_length"], info[f"{arch}.embedding_length"]) == (2048, 576)
    assert ollama_api.model_info(entry(context_length=1024))[f"{arch}.context_length"] == 1024
    bare = CatalogueView(entry=CatalogueEntry(id="m", n_ctx=8, footprint_mb=1))
    info = ollama_api.show_body("m", bare)["model_info"]
    arch = info["general.architecture"]
    assert isinstance(arch, str) and isinstance(info["general.parameter_count"], int)
    assert isinstance(info[f"{arch}.context_length"], int)
    assert isinstance(info[f"{arch}.embedding_length"], int)


def test_capabilities_come_from_the_catalogue_loaded_or_not() -> None:
    idle = CatalogueView(entry=entry())
    loaded = CatalogueView(
        entry=entry(), states={"n": LoadedModel(id="m", state="ready", dialect=DIALECT)}
    )
    for view in (idle, loaded):
        shown = ollama_api.show_body("m", view)
        assert shown["capabilities"] == ["completion", "tools", "thinking"]
        assert shown["dialect"] == DIALECT
        assert catalogue_capabilities(view) == ["reasoning", "tools"]
    embed = CatalogueView(entry=entry(embedding=True, capabilities=["embedding"], dialect={}))
    assert ollama_api.capabilities_of(embed) == ["embedding"]
    assert catalogue_capabilities(embed) == ["embeddings"]
    # an older neuron's entry says nothing: an embedding model is still never "completion"
    old = CatalogueView(entry=CatalogueEntry(id="m", n_ctx=8, footprint_mb=1, embedding=True))
    assert ollama_api.capabilities_of(old) == ["embedding"]


def test_a_loaded_model_never_expires() -> None:
    view = CatalogueView(entry=entry(), states={"n": LoadedModel(id="m", state="ready")})
    [running] = ollama_api.ps_body({"m": view}, {}, on_gpu=())["models"]
    expires = datetime.fromisoformat(running["expires_at"].replace("Z", "+00:00"))
    # Ollama's clients show "Forever" past 20 years from now
    assert expires > datetime.now(UTC) + timedelta(days=365 * 21)


# --- Anthropic's model list ----------------------------------------------------------------


def models(*ids: str) -> list[dict[str, Any]]:
    return [{"type": "model", "id": i} for i in ids]


def test_anthropic_pages_go_forward_and_back() -> None:
    listed = models("a", "b", "c")
    first = anthropic_models_page(listed, 2, "", "")
    assert [m["id"] for m in first["data"]] == ["a", "b"]
    assert (first["has_more"], first["first_id"], first["last_id"]) == (True, "a", "b")
    rest = anthropic_models_page(listed, 2, "b", "")
    assert ([m["id"] for m in rest["data"]], rest["has_more"]) == (["c"], False)
    back = anthropic_models_page(listed, 1, "", "c")
    assert ([m["id"] for m in back["data"]], back["has_more"]) == (["b"], True)
    empty = anthropic_models_page([], 20, "", "")
    assert (empty["data"], empty["first_id"], empty["last_id"]) == ([], None, None)
    for limit, after in ((0, ""), (1001, ""), (5, "zzz")):
        with pytest.raises(ApiError):
            anthropic_models_page(listed, limit, after, "")
