"""What Ollama's clients (the official package and Go CLI, IDE plugins) and the anthropic
SDK's model list expect of the whole stack: listings they can slice and read without
looking (digest, model_info), capabilities that are the same loaded or not, `:latest`,
Ollama's words for refusals, neutral options, a prefilled reply, and empty embeddings."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anthropic
import gguf
import httpx
import nats
import ollama
import openai
import pytest

from cortex_wire import codec, subjects
from cortex_wire.messages import Heartbeat
from tests.support.stack import RunningStack, stack_on_own_bus
from tests.support.tiny_gguf import IM_END, IM_START, TinyModel, build_tiny_gguf

NODE = "ollama-clients"
USER = [{"role": "user", "content": "Say hello"}]
PREFILL = [*USER, {"role": "assistant", "content": "The capital of France is"}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]  # fmt: skip
NEUTRAL = {"mirostat": 0, "mirostat_tau": 5.0, "mirostat_eta": 0.1, "typical_p": 1.0,
           "tfs_z": 1.0, "repeat_last_n": 64, "penalize_newline": False}  # fmt: skip


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """No reasoning or tool-call tokens; a prompt ending in " is" goes on with " Paris."."""
    path = tmp_path_factory.mktemp("plain") / "plain.gguf"
    return build_tiny_gguf(
        path, ("Bonjour", "!"), specials=(IM_START, IM_END), branches={" is": (" Paris", ".")}
    )


@pytest.fixture(scope="module")
def clients_stack(
    hello_model: TinyModel, plain_model: TinyModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    folder: Path = tmp_path_factory.mktemp("ollama-clients")
    embedder = build_tiny_gguf(folder / "embed.gguf", ("Hi",), pooling=gguf.PoolingType.MEAN)
    models = [
        {"id": "tiny-hello", "path": str(hello_model.path), "n_ctx": 256},
        # The same file, never loaded here: what is said of it is said unloaded.
        {"id": "tiny-idle", "path": str(hello_model.path), "n_ctx": 256},
        {"id": "tiny-plain", "path": str(plain_model.path), "n_ctx": 256},
        {"id": "tiny-embed", "path": str(embedder.path), "n_ctx": 256, "embedding": True},
    ]
    # A tagged name that is itself an alias is that alias, not the untagged model.
    aliases = {"tiny-plain:latest": "tiny-hello"}
    with stack_on_own_bus(folder, models, node=NODE, aliases=aliases) as running:
        yield running


@pytest.fixture
def llama(clients_stack: RunningStack) -> ollama.Client:
    return ollama.Client(host=clients_stack.base_url)


def post(stack: RunningStack, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{stack.base_url}{path}", json=body, timeout=60)


def test_listings_can_be_sliced_and_read_as_the_go_cli_does(llama: ollama.Client) -> None:
    listed = {m.model: m for m in llama.list().models}
    digest = listed["tiny-hello:latest"].digest or ""
    assert len(digest) == 64 and int(digest, 16) >= 0  # the CLI shows digest[:12]
    assert listed["tiny-idle:latest"].digest == digest  # the same file, the same digest
    # `tiny-plain:latest` is an alias of another model: `tiny-plain` is listed untagged
    assert listed["tiny-plain"].digest not in ("", digest)
    assert listed["tiny-plain:latest"].digest == digest  # an alias is its target
    details = listed["tiny-hello:latest"].details
    assert details is not None
    assert (details.format, details.family, details.quantization_level) == ("gguf", "llama", "F32")
    assert details.parameter_size
    llama.chat(model="tiny-hello", messages=USER)
    running = {m.model: m for m in llama.ps().models}
    assert running["tiny-hello:latest"].digest == digest
    # cortex has no idle timers: a loaded model shows as kept for good ("Forever")
    expires = running["tiny-hello:latest"].expires_at
    assert expires is not None and expires > datetime.now(UTC) + timedelta(days=365 * 21)


def test_the_list_names_models_as_ollama_does_and_each_name_answers(
    llama: ollama.Client,
) -> None:
    """LangChain's ChatOllama(validate_model_on_init=True) looks for the tagged name in the
    list; the untagged one still answers."""
    names = [m.model for m in llama.list().models]
    assert {"tiny-hello:latest", "tiny-idle:latest", "tiny-embed:latest"} <= set(names)
    assert "tiny-hello" not in names
    for name in ("tiny-hello:latest", "tiny-hello"):
        assert llama.chat(model=name, messages=USER).message.content == "Hello, world!"


def test_a_listed_name_is_a_model_on_every_route(clients_stack: RunningStack) -> None:
    """A client that listed /api/tags uses its tagged names on the OpenAI routes too: they
    answer, and looking one up finds the model they answer with."""
    oai = clients_stack.openai()
    done = oai.chat.completions.create(model="tiny-hello:latest", messages=USER)
    assert done.choices[0].message.content == "Hello, world!"
    assert oai.models.retrieve("tiny-hello:latest").id == "tiny-hello"
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("tiny-nope:latest")


def test_the_list_sizes_each_file_on_disk_and_dates_it(
    llama: ollama.Client, hello_model: TinyModel, clients_stack: RunningStack
) -> None:
    on_disk = hello_model.path.stat()
    when = datetime.fromtimestamp(int(on_disk.st_mtime), UTC)
    listed = {m.model: m for m in llama.list().models}
    hello = listed["tiny-hello:latest"]
    assert (hello.size, hello.modified_at) == (on_disk.st_size, when)
    assert listed["tiny-idle:latest"].size == on_disk.st_size  # the same file
    shown = post(clients_stack, "/api/show", {"model": "tiny-hello"}).json()
    assert datetime.fromisoformat(shown["modified_at"]) == when
    llama.chat(model="tiny-hello", messages=USER)
    [running] = [m for m in llama.ps().models if m.model == "tiny-hello:latest"]
    assert running.size and running.size != on_disk.st_size  # loaded: its memory


async def next_heartbeat(stack: RunningStack) -> Heartbeat:
    """The neuron's next heartbeat, off the bus."""
    nc = await nats.connect(stack.nats_url)
    try:
        beats = await nc.subscribe(subjects.heartbeat(NODE))
        return codec.decode((await beats.next_msg(timeout=10)).data, Heartbeat)
    finally:
        await nc.close()


async def test_ps_says_whether_a_model_is_in_vram_as_its_neuron_s_devices_do(
    clients_stack: RunningStack,
) -> None:
    """`ollama ps` prints "100% GPU" when size_vram is the size, "100% CPU" when it is 0."""
    beat = await next_heartbeat(clients_stack)
    on_gpu = any(d.kind == "cuda" for d in beat.devices)
    llama = ollama.Client(host=clients_stack.base_url)
    await asyncio.to_thread(llama.chat, model="tiny-hello", messages=USER)
    running = await asyncio.to_thread(llama.ps)
    [hello] = [m for m in running.models if m.model == "tiny-hello:latest"]
    assert hello.size and hello.size_vram == (hello.size if on_gpu else 0)


@pytest.mark.parametrize(
    ("path", "body"),
    [("/api/show", {}), ("/api/show", {"model": ""}),
     ("/api/chat", {"model": "", "messages": USER}), ("/api/generate", {"model": ""}),
     ("/api/embed", {"model": "", "input": "x"}), ("/api/embeddings", {"model": ""})],
)  # fmt: skip
def test_naming_no_model_is_told_the_model_is_required(
    clients_stack: RunningStack, path: str, body: dict[str, Any]
) -> None:
    answer = post(clients_stack, path, body)
    assert (answer.status_code, answer.json()) == (400, {"error": "model is required"})


def test_show_says_what_the_gguf_says_and_the_same_loaded_or_not(
    llama: ollama.Client, clients_stack: RunningStack
) -> None:
    idle = llama.show("tiny-idle")
    assert idle.capabilities == ["completion", "tools", "thinking"]
    info = idle.modelinfo or {}
    arch = info["general.architecture"]
    assert arch == "llama" and info["general.parameter_count"] > 0
    assert isinstance(info[f"{arch}.context_length"], int)
    assert isinstance(info[f"{arch}.embedding_length"], int) and info[f"{arch}.embedding_length"]
    llama.chat(model="tiny-hello", messages=USER)
    loaded = post(clients_stack, "/api/show", {"model": "tiny-hello"}).json()
    assert loaded["capabilities"] == idle.capabilities
    listed = httpx.get(f"{clients_stack.base_url}/v1/models").json()
    states = {m["id"]: m for m in listed["data"]}
    assert states["tiny-idle"]["capabilities"] == ["reasoning", "tools"]
    assert llama.show("tiny-plain").capabilities == ["completion"]
    assert llama.show("tiny-embed").capabilities == ["embedding"]
    assert states["tiny-embed"]["capabilities"] == ["embeddings"]


async def test_the_catalogue_says_what_the_load_reads(clients_stack: RunningStack) -> None:
    """The dialect a neuron announces for a model at its start is the one its load reads."""
    llama = ollama.Client(host=clients_stack.base_url)
    await asyncio.to_thread(llama.chat, model="tiny-hello", messages=USER)
    beat = await next_heartbeat(clients_stack)
    [loaded] = [m for m in beat.models if m.id == "tiny-hello" and m.state == "ready"]
    [entry] = [e for e in beat.catalogue if e.id == "tiny-hello"]
    assert loaded.dialect and entry.dialect == loaded.dialect
    assert entry.reasoning_markers == loaded.reasoning_markers


def test_latest_is_the_untagged_model_unless_it_is_a_name_itself(llama: ollama.Client) -> None:
    done = llama.chat(model="tiny-hello:latest", messages=USER)
    assert done.message.content == "Hello, world!"
    assert "completion" in (llama.show("tiny-hello:latest").capabilities or [])
    aliased = llama.chat(model="tiny-plain:latest", messages=USER)
    assert aliased.message.content == "Hello, world!"  # the alias's target, not tiny-plain


@pytest.mark.parametrize(
    "call",
    [lambda c: c.chat(model="nope", messages=USER), lambda c: c.show("nope"),
     lambda c: c.chat(model="nope:latest", messages=USER)],
)  # fmt: skip
def test_an_unknown_model_is_not_found_in_ollamas_words(llama: ollama.Client, call) -> None:
    with pytest.raises(ollama.ResponseError) as raised:
        call(llama)
    assert raised.value.status_code == 404 and "not found" in raised.value.error


def test_head_on_tags_and_version(clients_stack: RunningStack) -> None:
    for path in ("/api/tags", "/api/version"):
        assert httpx.head(f"{clients_stack.base_url}{path}").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/push"), ("POST", "/api/create"),
     ("POST", "/api/copy"), ("DELETE", "/api/delete"), ("POST", "/api/blobs/sha256:00ff"),
     ("HEAD", "/api/blobs/sha256:00ff")],
)  # fmt: skip
def test_managing_models_is_not_supported_here(
    clients_stack: RunningStack, method: str, path: str
) -> None:
    answer = httpx.request(method, f"{clients_stack.base_url}{path}", json={"model": "x"})
    assert answer.status_code == 501
    if method != "HEAD":
        assert "models.toml" in answer.json()["error"]


def test_pulling_a_catalogued_model_succeeds_with_nothing_to_download(
    llama: ollama.Client,
) -> None:
    assert llama.pull("tiny-hello").status == "success"
    statuses = list(llama.pull("tiny-hello:latest", stream=True))
    assert statuses[0].status == "pulling manifest" and statuses[-1].status == "success"
    listed = {m.model: m for m in llama.list().models}["tiny-hello:latest"]
    layer = next(s for s in statuses if s.digest)
    assert layer.digest == f"sha256:{listed.digest}"
    assert layer.total == layer.completed == listed.size > 0
    with pytest.raises(ollama.ResponseError) as raised:
        llama.pull("nope")
    assert raised.value.status_code == 404 and "not found" in raised.value.error


def test_neutral_options_are_taken_and_change_nothing(llama: ollama.Client) -> None:
    done = llama.chat(model="tiny-hello", messages=USER, options=NEUTRAL)
    assert done.message.content == "Hello, world!"
    with pytest.raises(ollama.ResponseError) as refused:
        llama.chat(model="tiny-hello", messages=USER, options={"mirostat": 2})
    assert refused.value.status_code == 400 and "options.mirostat" in refused.value.error


def test_tools_or_thinking_for_a_model_without_them_are_refused(llama: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        llama.chat(model="tiny-plain", messages=USER, tools=TOOLS)
    assert refused.value.status_code == 400
    assert refused.value.error == '"tiny-plain" does not support tools'
    with pytest.raises(ollama.ResponseError) as refused:
        llama.chat(model="tiny-plain", messages=USER, think=True)
    assert refused.value.error == '"tiny-plain" does not support thinking'
    assert llama.chat(model="tiny-plain", messages=USER, think=False).message.content == "Bonjour!"
    assert llama.chat(model="tiny-hello", messages=USER, tools=TOOLS).message is not None


def test_a_final_assistant_message_is_continued(llama: ollama.Client) -> None:
    assert llama.chat(model="tiny-plain", messages=USER).message.content == "Bonjour!"
    done = llama.chat(model="tiny-plain", messages=PREFILL)
    assert done.message.content == " Paris."
    parts = list(llama.chat(model="tiny-plain", messages=PREFILL, stream=True))
    assert "".join(p.message.content or "" for p in parts) == " Paris."


@pytest.mark.parametrize("body", [{"input": []}, {"input": ""}, {}])
def test_embed_without_input_loads_the_model_and_embeds_nothing(
    clients_stack: RunningStack, llama: ollama.Client, body: dict[str, Any]
) -> None:
    answer = post(clients_stack, "/api/embed", {"model": "tiny-embed", **body})
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == "tiny-embed" and answer.json()["embeddings"] == []
    assert "tiny-embed:latest" in {m.model for m in llama.ps().models}


def test_null_is_the_default(clients_stack: RunningStack) -> None:
    answer = post(
        clients_stack, "/api/chat",
        {"model": "tiny-hello", "messages": [{"role": "system", "content": None}, *USER],
         "stream": None, "options": None, "tools": None, "think": None, "keep_alive": None},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    lines = answer.text.splitlines()  # stream null: streamed, as Ollama's default
    assert len(lines) > 1


ANSWERS_WITH_IDS = [
    ("/v1/embeddings", {"model": "tiny-embed", "input": "Hi"}),
    ("/api/embed", {"model": "tiny-embed", "input": "Hi"}),
    ("/api/embed", {"model": "tiny-embed"}),  # nothing to embed: a load
    ("/api/embeddings", {"model": "tiny-embed", "prompt": "Hi"}),
    ("/v1/messages/count_tokens", {"model": "tiny-hello", "messages": USER}),
]


@pytest.mark.parametrize(("path", "body"), ANSWERS_WITH_IDS)
def test_answers_carry_their_request_id(
    clients_stack: RunningStack, path: str, body: dict[str, Any]
) -> None:
    answer = post(clients_stack, path, body)
    assert answer.status_code == 200, answer.text
    assert (
        answer.headers["request-id"]
        and answer.headers["x-request-id"] == (answer.headers["request-id"])
    )


def test_the_anthropic_model_list_carries_request_ids(clients_stack: RunningStack) -> None:
    client = anthropic.Anthropic(base_url=clients_stack.base_url, api_key="unused")
    page = client.models.with_raw_response.list(limit=1)
    assert page.headers["request-id"].startswith("req_")
    retrieved = client.models.with_raw_response.retrieve("tiny-hello")
    assert retrieved.headers["request-id"].startswith("req_")
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.models.retrieve("nope")
    assert missing.value.request_id and missing.value.request_id.startswith("req_")
    assert missing.value.body["request_id"] == missing.value.request_id  # type: ignore[index]


@pytest.mark.parametrize("limit", ["abc", "0", "1.5", ""])
def test_a_bad_page_limit_is_refused_in_anthropic_s_shape(
    clients_stack: RunningStack, limit: str
) -> None:
    answer = httpx.get(
        f"{clients_stack.base_url}/v1/models", params={"limit": limit},
        headers={"anthropic-version": "2023-06-01"},
    )  # fmt: skip
    assert answer.status_code == 400
    body = answer.json()
    assert (body["type"], body["error"]["type"]) == ("error", "invalid_request_error")
    assert "limit" in body["error"]["message"] and body["request_id"].startswith("req_")
    # the openai SDK's list does not read the query
    assert httpx.get(f"{clients_stack.base_url}/v1/models", params={"limit": limit}).is_success


def test_the_anthropic_sdk_lists_and_retrieves_models(
    clients_stack: RunningStack, hello_model: TinyModel
) -> None:
    client = anthropic.Anthropic(base_url=clients_stack.base_url, api_key="unused")
    page = client.models.list(limit=2)
    assert [m.type for m in page.data] == ["model", "model"]
    assert page.has_more and page.last_id == page.data[-1].id
    every = [m.id for m in client.models.list(limit=2)]  # every page, after_id by after_id
    assert {"tiny-hello", "tiny-plain", "tiny-plain:latest"} <= set(every)
    assert "tiny-embed" not in every  # it cannot answer /v1/messages
    retrieved = client.models.retrieve("tiny-hello")
    assert (retrieved.id, retrieved.display_name) == ("tiny-hello", "tiny-hello")
    assert retrieved.created_at.timestamp() == int(hello_model.path.stat().st_mtime)
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.models.retrieve("nope")
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    # the openai SDK's shape is unchanged
    openai_shape = httpx.get(f"{clients_stack.base_url}/v1/models").json()
    assert openai_shape["object"] == "list" and "has_more" not in openai_shape
