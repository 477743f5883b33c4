"""Reasoning tokens end to end: markers found in the GGUF vocabulary, routed by token id on
the neuron, projected per client by the gateway — driven through the official openai SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import write_catalogue
from tests.support.stack import RunningStack, running_stack, stack_settings
from tests.support.tiny_gguf import CHATML_TEMPLATE, IM_END, IM_START, build_tiny_gguf

USER = [{"role": "user", "content": "Think, then answer"}]
INLINE = {"x-include-thinking": "true"}

# A chat template that honours chat_template_kwargs.enable_thinking the way reasoning models'
# templates do: when thinking is off it writes an empty reasoning block into the prompt.
THINK_SWITCH_TEMPLATE = CHATML_TEMPLATE.replace(
    "{{ '<|im_start|>assistant\\n' }}",
    "{{ '<|im_start|>assistant\\n' }}"
    "{% if enable_thinking is defined and not enable_thinking %}{{ '<think></think>' }}{% endif %}",
)
# A template that opens the reasoning itself: generation starts inside it.
INJECTING_TEMPLATE = CHATML_TEMPLATE.replace(
    "{{ '<|im_start|>assistant\\n' }}", "{{ '<|im_start|>assistant\\n<think>\\n' }}"
)


@pytest.fixture(scope="module")
def reasoning_stack(
    nats_server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    folder: Path = tmp_path_factory.mktemp("reasoning")
    think = build_tiny_gguf(
        folder / "think.gguf",
        ("<think>", "Let", " me", " think", "</think>", "Hello", "!"),
        user_defined=("<think>", "</think>"),  # detokenise to their text: routing must not care
        chat_template=THINK_SWITCH_TEMPLATE,
    )
    bracket = build_tiny_gguf(
        folder / "bracket.gguf",
        ("[THINK]", "Hmm", "[/THINK]", "Yes"),
        specials=(IM_START, IM_END, "[THINK]", "[/THINK]"),  # CONTROL: detokenise to nothing
    )
    plain = build_tiny_gguf(
        folder / "plain.gguf", ("<", "think", ">", "raw"), specials=(IM_START, IM_END)
    )
    injected = build_tiny_gguf(
        folder / "injected.gguf",
        ("Pondering", "</think>", "Done"),
        chat_template=INJECTING_TEMPLATE,
    )
    spaced = build_tiny_gguf(  # as real models write it: whitespace around the reasoning
        folder / "spaced.gguf",
        ("<think>", "\n ", "Let", " me", " \n", "</think>", "\n\n", "Hello", "!"),
        user_defined=("<think>", "</think>"),
    )
    models = write_catalogue(
        folder / "models.toml",
        [
            {"id": "think", "path": str(think.path), "n_ctx": 256},
            {"id": "spaced", "path": str(spaced.path), "n_ctx": 256},
            {"id": "bracket", "path": str(bracket.path), "n_ctx": 256},
            {"id": "plain", "path": str(plain.path), "n_ctx": 256},
            {"id": "injected", "path": str(injected.path), "n_ctx": 256},
        ],
    )
    settings = stack_settings(nats_server.url, models, node="reasoning-neuron")
    with running_stack(settings) as stack:
        yield stack


@pytest.fixture
def client(reasoning_stack: RunningStack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{reasoning_stack.base_url}/v1", api_key="unused", max_retries=0)


def reasoning_of(message_or_delta) -> str | None:
    return (message_or_delta.model_extra or {}).get("reasoning_content")


def stream_parts(client: openai.OpenAI, model: str, **kwargs) -> tuple[str, str, list]:
    chunks = list(client.chat.completions.create(model=model, messages=USER, stream=True, **kwargs))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join(reasoning_of(c.choices[0].delta) or "" for c in chunks if c.choices)
    return content, reasoning, chunks


@pytest.mark.parametrize(
    ("model", "reasoning", "content"),
    [
        ("think", "Let me think", "Hello!"),  # <think> USER_DEFINED
        ("bracket", "Hmm", "Yes"),  # [THINK] CONTROL
        ("injected", "Pondering", "Done"),  # the template opened the reasoning
        ("spaced", "Let me", "Hello!"),  # trimmed, as llama-server and Ollama trim them
    ],
)
def test_reasoning_goes_to_reasoning_content_never_into_content(
    client: openai.OpenAI, model: str, reasoning: str, content: str
) -> None:
    completion = client.chat.completions.create(model=model, messages=USER)
    message = completion.choices[0].message
    assert message.content == content
    assert reasoning_of(message) == reasoning
    assert completion.usage is not None
    details = completion.usage.completion_tokens_details
    assert details is not None and details.reasoning_tokens > 0
    assert completion.usage.completion_tokens > details.reasoning_tokens

    streamed_content, streamed_reasoning, _ = stream_parts(client, model)
    assert (streamed_content, streamed_reasoning) == (content, reasoning)


def test_the_answers_log_probabilities_skip_the_whitespace_trimmed_off_it(
    client: openai.OpenAI,
) -> None:
    completion = client.chat.completions.create(model="spaced", messages=USER, logprobs=True)
    scored = completion.choices[0].logprobs
    assert scored is not None and scored.content is not None
    assert [t.token for t in scored.content] == ["Hello", "!"]


def test_include_thinking_header_rewraps_reasoning_inline(client: openai.OpenAI) -> None:
    for value in ("true", "1", "YES"):
        completion = client.chat.completions.create(
            model="think", messages=USER, extra_headers={"x-include-thinking": value}
        )
        assert completion.choices[0].message.content == "<think>Let me think</think>Hello!"
        assert reasoning_of(completion.choices[0].message) is None
    content, reasoning, _ = stream_parts(client, "bracket", extra_headers=INLINE)
    assert (content, reasoning) == ("[THINK]Hmm[/THINK]Yes", "")


def test_inline_close_marker_is_written_at_finish_when_reasoning_is_cut(
    client: openai.OpenAI,
) -> None:
    content, _, chunks = stream_parts(client, "think", extra_headers=INLINE, max_tokens=3)
    assert content == "<think>Let me</think>"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


def test_generation_cut_inside_reasoning_is_length_and_all_reasoning(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="think", messages=USER, max_tokens=3)
    choice = completion.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.content == ""
    assert reasoning_of(choice.message) == "Let me"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    details = completion.usage.completion_tokens_details
    assert details is not None and details.reasoning_tokens == 3


def test_model_without_markers_passes_through_untouched(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="plain", messages=USER)
    assert plain.choices[0].message.content == "<think>raw"
    assert reasoning_of(plain.choices[0].message) is None
    inline = client.chat.completions.create(model="plain", messages=USER, extra_headers=INLINE)
    assert inline.choices[0].message.content == "<think>raw"


def test_chat_template_kwargs_reach_the_template(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="think",
        messages=USER,
        extra_body={"chat_template_kwargs": {"enable_thinking": False}},
    )
    assert completion.choices[0].message.content == "Hello!"
    assert reasoning_of(completion.choices[0].message) is None


def test_models_shows_which_models_reason(
    client: openai.OpenAI, reasoning_stack: RunningStack
) -> None:
    for model in ("think", "bracket", "plain"):
        client.chat.completions.create(model=model, messages=USER, max_tokens=1)
    body = httpx.get(f"{reasoning_stack.base_url}/v1/models").json()
    by_id = {m["id"]: m for m in body["data"]}
    # "think" has the tool-call pair in its vocabulary too; "bracket" and "plain" do not.
    assert by_id["think"]["capabilities"] == ["reasoning", "tools"]
    assert by_id["think"]["reasoning_markers"] == ["<think>", "</think>"]
    assert by_id["think"]["dialect"]["reasoning"] == "<think>…</think>"
    assert by_id["think"]["dialect"]["tools"] == "json <tool_call> … </tool_call>"
    assert by_id["bracket"]["reasoning_markers"] == ["[THINK]", "[/THINK]"]
    assert by_id["bracket"]["capabilities"] == ["reasoning"]
    assert by_id["plain"]["capabilities"] == []
    assert "reasoning_markers" not in by_id["plain"]
    assert by_id["plain"]["dialect"]["reasoning"] == ""
