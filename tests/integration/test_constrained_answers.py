"""A JSON schema holds the answer, not the reasoning: a model that reasons first still
reasons (freely), then answers in the schema, whichever way its family writes reasoning —
tags it opens itself, an opener its template already wrote into the prompt, or a channel
grammar's messages. Before, the grammar held the output from its first token: the model
could not open its reasoning, and where the template had opened it the JSON went into the
reasoning channel, leaving the answer empty.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import write_catalogue
from tests.integration.test_model_families import FAMILIES, THOUGHT, USER
from tests.support.stack import RunningStack, running_stack, stack_settings
from tests.support.templates import template
from tests.support.tiny_gguf import IM_END, IM_START, build_tiny_gguf

ANSWER = '{"a": 1}'
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
# Each family's reasoning reply, its answer replaced by the JSON the schema admits.
REPLIES = {
    "hermes": ("<think>", THOUGHT, "</think>", ANSWER),  # opens its reasoning itself
    "sentinels": (THOUGHT, "</think>", ANSWER),  # the template opened it (thinking on)
    "channels": ("<|channel|>", "analysis", "<|message|>", THOUGHT, "<|end|>", "<|start|>",
                 "assist", "ant", "<|channel|>", "final", "<|message|>", ANSWER, "<|return|>"),
}  # fmt: skip
# A reply that writes markers where the schema's string admits any text: a grammar that
# held characters alone let a tiny model (greedy among ties) pick them inside the answer.
MARKED = ('{"s": "', "<think>", "</tool_call>", 'hi"}')
STRING_SCHEMA = {"type": "object", "properties": {"s": {"type": "string", "maxLength": 8}},
                 "required": ["s"]}  # fmt: skip


@pytest.fixture(scope="module")
def reasoning_stack(
    nats_server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    folder: Path = tmp_path_factory.mktemp("constrained")
    models: list[dict[str, object]] = []
    for name, reply in REPLIES.items():
        family = FAMILIES[name]
        built = build_tiny_gguf(
            folder / f"{name}.gguf", reply, specials=(IM_START, IM_END, *family.specials),
            chat_template=template(family.template), start=family.start, n_ctx=4096,
        )  # fmt: skip
        models.append({"id": name, "path": str(built.path), "n_ctx": 4096})
    hermes = FAMILIES["hermes"]
    marked = build_tiny_gguf(
        folder / "marked.gguf", MARKED, specials=(IM_START, IM_END, *hermes.specials),
        chat_template=template(hermes.template), start=hermes.start,
    )  # fmt: skip
    models.append({"id": "marked", "path": str(marked.path), "n_ctx": 512})
    catalogue = write_catalogue(folder / "models.toml", models)
    settings = stack_settings(nats_server.url, catalogue, node="constrained-neuron")
    with running_stack(settings) as stack:
        yield stack


@pytest.mark.parametrize("name", REPLIES)
def test_the_schema_holds_the_answer_and_the_model_still_reasons(
    reasoning_stack: RunningStack, name: str
) -> None:
    oai = openai.OpenAI(base_url=f"{reasoning_stack.base_url}/v1", api_key="x", max_retries=0)
    done = oai.chat.completions.create(
        model=name, messages=USER, reasoning_effort="high",
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}},
    )  # fmt: skip
    message = done.choices[0].message
    assert json.loads(message.content or "") == {"a": 1}
    assert (message.model_extra or {}).get("reasoning_content") == THOUGHT


def test_ollama_format_with_think_reasons_then_answers(reasoning_stack: RunningStack) -> None:
    reply = httpx.post(
        f"{reasoning_stack.base_url}/api/chat",
        json={
            "model": "hermes",
            "messages": USER,
            "think": True,
            "format": SCHEMA,
            "stream": False,
        },
        timeout=60,
    ).json()
    assert (reply["message"]["thinking"], json.loads(reply["message"]["content"])) == (
        THOUGHT, {"a": 1},
    )  # fmt: skip


def test_a_schema_held_answer_writes_no_marker_tokens(reasoning_stack: RunningStack) -> None:
    # A marker token inside the JSON opened reasoning (or a call) mid-answer, and the answer
    # stopped at '{"s": "'. Under a schema the answer is text: markers are held out.
    oai = openai.OpenAI(base_url=f"{reasoning_stack.base_url}/v1", api_key="x", max_retries=0)
    done = oai.chat.completions.create(
        model="marked", messages=USER, max_tokens=60,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "s", "schema": STRING_SCHEMA}},
    )  # fmt: skip
    message = done.choices[0].message
    answer = json.loads(message.content or "")
    assert isinstance(answer["s"], str) and "<" not in answer["s"]
    assert not (message.model_extra or {}).get("reasoning_content")
