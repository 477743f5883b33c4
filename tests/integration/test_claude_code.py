"""The real Claude Code CLI (from npm) against the stack, offline: `claude -p` with its
default settings answers through a model served under a mapped name (`"claude-*"` in
[aliases]), and the next turn (`--continue`) reads its prompt from the prefix cache.

The model is a tiny GGUF with a 64k context: Claude Code's first request is its whole
system prompt (~12-33k tokens with this vocabulary), which it prefills in seconds on CPU.
`.ci/run` installs the CLI into .cache/claude-code; without it this test installs it there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import RunningStack, stack_on_own_bus
from tests.support.tiny_gguf import DEFAULT_SPECIALS, build_tiny_gguf

ROOT = Path(__file__).resolve().parents[2]
PREFIX = ROOT / ".cache" / "claude-code"
PACKAGE = "@anthropic-ai/claude-code"


def claude_code() -> Path:
    """The CLI: $CORTEX_CLAUDE_CODE, else the one .ci/run installed (installed if absent)."""
    named = os.environ.get("CORTEX_CLAUDE_CODE")
    if named:
        return Path(named)
    binary = PREFIX / "node_modules" / ".bin" / "claude"
    if not binary.exists():
        npm = shutil.which("npm")
        assert npm, "Claude Code comes from npm: install Node.js and npm (or run .ci/run)"
        subprocess.run(
            [npm, "install", "--prefix", str(PREFIX), "--no-audit", "--no-fund", PACKAGE],
            check=True, capture_output=True, timeout=600,
        )  # fmt: skip
    return binary


TOOL_DONE = "<|tool_done|>"
# ChatML whose prompt ends on TOOL_DONE once a tool has answered, so the tool model's second
# chain (its answer) starts there; tool definitions are not rendered (they would add ~70k
# tokens with this byte-level vocabulary), calls and results are.
AGENT_TEMPLATE = (
    "{% set ns = namespace(tool=false) %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'tool' %}{% set ns.tool = true %}"
    "{{ '<|im_start|>user\\n<tool_response>' + message['content'] + '</tool_response>"
    "<|im_end|>\\n' }}"
    "{% else %}{% if message['role'] == 'assistant' %}{% set ns.tool = false %}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] }}"
    "{% for call in message.tool_calls or [] %}"
    "{{ '<tool_call>' + (call.function | tojson) + '</tool_call>' }}{% endfor %}"
    "{{ '<|im_end|>\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant' }}"
    "{{ '<|tool_done|>' if ns.tool else '\\n' }}{% endif %}"
)
WRITTEN = "written by a tool call\n"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("claude-work")


@pytest.fixture(scope="module")
def agent_stack(tmp_path_factory: pytest.TempPathFactory, workdir: Path) -> Iterator[RunningStack]:
    folder = tmp_path_factory.mktemp("claude-code")
    model = build_tiny_gguf(folder / "agent.gguf", ("Hello", "!"), n_ctx=65536)
    # Calls Write once, then answers when the tool's result comes back.
    call = {"name": "Write", "arguments": {"file_path": str(workdir / "out.txt"),
                                           "content": WRITTEN}}  # fmt: skip
    tools = build_tiny_gguf(
        folder / "tools.gguf", ("<tool_call>", json.dumps(call), "</tool_call>"), n_ctx=65536,
        specials=(*DEFAULT_SPECIALS, TOOL_DONE), branches={TOOL_DONE: ("All", " done", "!")},
        chat_template=AGENT_TEMPLATE,
    )  # fmt: skip
    models = [
        {"id": "tiny-agent", "path": str(model.path), "n_ctx": 65536, "parallel": 2},
        {"id": "tiny-tools", "path": str(tools.path), "n_ctx": 65536, "parallel": 2},
    ]
    aliases = {"claude-*": "tiny-agent", "claude-tools-*": "tiny-tools"}
    with stack_on_own_bus(folder, models, node="agent-neuron", aliases=aliases) as stack:
        yield stack


def ask(stack: RunningStack, home: Path, prompt: str, *flags: str, **env: str) -> dict[str, Any]:
    """One `claude -p` run (in `home`, also its working directory); its JSON result."""
    home.mkdir(exist_ok=True)
    environment = {
        "PATH": os.environ.get("PATH", ""), "HOME": str(home),
        "ANTHROPIC_BASE_URL": stack.base_url, "ANTHROPIC_API_KEY": "unused",
        "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", **env,
    }  # fmt: skip
    done = subprocess.run(
        [str(claude_code()), "-p", prompt, *flags, "--output-format", "json"],
        env=environment, cwd=home, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    result: dict[str, Any] = json.loads(done.stdout)
    assert not result["is_error"], result
    return result


@pytest.mark.timeout(900)
def test_claude_code_with_its_defaults_answers_through_a_mapped_name(
    agent_stack: RunningStack, tmp_path: Path
) -> None:
    result = ask(agent_stack, tmp_path / "home", "Reply with the word hello")
    assert result["result"] == "Hello!"
    assert result["stop_reason"] == "end_turn"
    (model,) = result["modelUsage"]  # whichever claude-* id it picked by default
    assert model.startswith("claude-")


@pytest.mark.timeout(900)
def test_the_next_turn_reads_its_prompt_from_the_cache(
    agent_stack: RunningStack, tmp_path: Path
) -> None:
    # One model id for both turns: Claude Code writes it into its system prompt.
    home, model = tmp_path / "home", {"ANTHROPIC_MODEL": "claude-sonnet-4-6"}
    first = ask(agent_stack, home, "Reply with the word hello", **model)
    second = ask(agent_stack, home, "And once more", "--continue", **model)
    assert second["result"] == "Hello!"
    usage = second["usage"]
    whole = usage["input_tokens"] + usage["cache_read_input_tokens"]
    assert whole > first["usage"]["input_tokens"] > 5000  # the whole system prompt came
    assert usage["cache_read_input_tokens"] > 0.95 * whole


@pytest.mark.timeout(900)
def test_a_tool_call_runs_in_claude_code_and_its_result_comes_back(
    agent_stack: RunningStack, workdir: Path
) -> None:
    """tool_use → Claude Code runs Write (allowed) → tool_result → the model's answer."""
    result = ask(
        agent_stack, workdir, "Write the file", "--allowedTools", "Write",
        ANTHROPIC_MODEL="claude-tools-1",
    )  # fmt: skip
    assert (workdir / "out.txt").read_text() == WRITTEN  # the call ran, with its arguments
    assert result["result"] == "All done!"  # the answer to the tool's result
    assert result["num_turns"] == 2


def test_a_mapped_name_is_retrieved_as_the_model_it_maps_to(agent_stack: RunningStack) -> None:
    """What Claude Code's /model picker and the SDKs ask of a name a pattern alias maps."""
    retrieved = agent_stack.anthropic().models.retrieve("claude-sonnet-4-6")
    assert (retrieved.id, retrieved.max_input_tokens) == ("claude-sonnet-4-6", 65536)
    openai_shape = agent_stack.openai().models.retrieve("claude-sonnet-4-6")
    assert (openai_shape.model_extra or {})["alias_for"] == "tiny-agent"
    assert openai_shape.created > 0  # when its GGUF was written
