"""The official `ollama` package against the whole stack: generate (templated and raw),
the model list, what is loaded, show, version, and errors in Ollama's shape."""

from __future__ import annotations

import httpx
import ollama
import pytest

from tests.support.stack import RunningStack

USER = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def llama(stack: RunningStack) -> ollama.Client:
    return ollama.Client(host=stack.base_url)


def test_generate_templated_and_raw_streamed_and_not(llama: ollama.Client) -> None:
    done = llama.generate(model="tiny-hello", prompt="Say hello", options={"temperature": 0})
    assert done.response == "Hello, world!" and done.done and done.done_reason == "stop"
    assert done.eval_count == 4 and done.prompt_eval_count and done.total_duration
    parts = list(llama.generate(model="tiny-hello", prompt="Say hello", stream=True))
    assert "".join(p.response for p in parts) == "Hello, world!"
    assert parts[-1].done and parts[-1].eval_count == 4
    # raw: the prompt goes to the model as written (here ending where the chain starts)
    raw = llama.generate(model="tiny-hello", prompt="<|im_start|>assistant\n", raw=True)
    assert raw.response == "Hello, world!"
    short = llama.generate(model="tiny-hello", prompt="Say hello", options={"num_predict": 2})
    assert short.done_reason == "length" and short.eval_count == 2


def test_tags_ps_show_and_version(llama: ollama.Client, stack: RunningStack) -> None:
    names = {m.model for m in llama.list().models}
    # as Ollama lists them, tagged; aliases are listed too
    assert {"tiny-hello:latest", "tiny-endless:latest", "hello:latest"} <= names
    llama.chat(model="tiny-hello", messages=USER)
    loaded = llama.ps().models
    assert "tiny-hello:latest" in {m.model for m in loaded}
    entry = next(m for m in loaded if m.model == "tiny-hello:latest")
    assert entry.size and entry.size_vram in (0, entry.size)  # on the CPU or on GPUs
    shown = llama.show("tiny-hello")
    assert "completion" in (shown.capabilities or [])
    version = httpx.get(f"{stack.base_url}/api/version").json()
    assert version["version"]


@pytest.mark.parametrize(
    ("call", "status", "says"),
    [
        (lambda c: c.chat(model="no-such-model", messages=USER), 404, "not found"),
        (lambda c: c.chat(model="tiny-hello", messages=USER, options={"mirostat": 2}), 400,
         "options.mirostat"),
        (lambda c: c.chat(model="tiny-hello", messages=USER, keep_alive="forever"), 400,
         "keep_alive must be"),
        # this stack has no admin keys: what only an operator may do is refused, saying why
        (lambda c: c.chat(model="tiny-hello", messages=USER, keep_alive=0), 403,
         "keep_alive 0 unloads it"),
        (lambda c: c.chat(model="tiny-hello", messages=USER, think="hard"), 400, "think"),
        (lambda c: c.generate(model="tiny-hello", prompt="hi", images=["aGk="]), 400, "images"),
        (lambda c: c.show("no-such-model"), 404, "not found"),
    ],
)  # fmt: skip
def test_errors_come_in_ollamas_shape(llama: ollama.Client, call, status: int, says: str) -> None:
    with pytest.raises(ollama.ResponseError) as raised:
        call(llama)
    assert raised.value.status_code == status
    assert says in raised.value.error


def test_a_negative_keep_alive_is_answered_where_admin_operations_are_disabled(
    llama: ollama.Client,
) -> None:
    """Zed sends keep_alive -1 with every chat; this stack has no admin keys."""
    done = llama.chat(model="tiny-hello", messages=USER, keep_alive=-1)
    assert done.message.content == "Hello, world!"
    assert llama.generate(model="tiny-hello", keep_alive="-1s").done_reason == "load"


def test_runtime_options_are_accepted_and_the_model_still_answers(llama: ollama.Client) -> None:
    done = llama.chat(
        model="tiny-hello", messages=USER, options={"num_ctx": 4096, "num_thread": 2, "seed": 1}
    )
    assert done.message.content == "Hello, world!"


def test_tool_results_pair_with_their_call_by_tool_name(llama: ollama.Client) -> None:
    """Ollama clients send a result with the tool's name, no id: it still reaches the
    template as the result of that call (the prompt grows by it)."""
    history = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_name": "get_weather", "content": "Sunny and warm today"},
    ]  # fmt: skip
    with_result = llama.chat(model="tiny-hello", messages=history)
    without = llama.chat(model="tiny-hello", messages=history[:2])
    assert with_result.prompt_eval_count > without.prompt_eval_count
