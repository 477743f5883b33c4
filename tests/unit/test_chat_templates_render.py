"""Every real template renders the way Hugging Face renders it (loop controls, generation
blocks, list methods, tojson of generators), and a template's own refusals stay clear."""

from __future__ import annotations

from pathlib import Path

import pytest

from cortex_neuron.chat_template import TemplateError, render_chat
from cortex_neuron.dialect import detect_dialect
from tests.support.templates import all_templates

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
USER = [{"role": "user", "content": "Weather in Paris?"}]
# Templates that need variables of their own besides the chat (the client passes them as
# chat_template_kwargs).
EXTRA = {
    "fireworks-ai-llama-3-firefunction-v2.jinja": {"functions": "[]", "datetime": "2026-12-01"}
}


def render(path: Path, messages, **kwargs) -> str:
    return render_chat(
        path.read_text(), messages, bos_token="<s>", eos_token="</s>",
        template_kwargs=EXTRA.get(path.name), **kwargs,
    )  # fmt: skip


def test_the_fixture_carries_the_template_folder() -> None:
    assert len(all_templates()) >= 70


@pytest.mark.parametrize("path", all_templates(), ids=lambda p: p.name)
def test_every_template_renders_a_conversation(path: Path) -> None:
    prompt = render(path, USER)
    assert "Weather in Paris?" in prompt


@pytest.mark.parametrize("path", all_templates(), ids=lambda p: p.name)
def test_every_template_yields_a_dialect(path: Path) -> None:
    dialect = detect_dialect(path.read_text(), bos="<s>", eos="</s>")
    assert set(dialect.summary()) == {
        "reasoning",
        "tools",
        "thinking_switch",
        "effort_variable",
        "budget_variable",
    }


def test_loop_controls_and_generation_blocks_compile() -> None:
    template = (
        "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}"
        "{% generation %}{{ m.content }}{% endgeneration %}{% endfor %}"
    )
    assert (
        render_chat(template, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
        == "a"
    )


def test_templates_may_append_to_their_own_lists_but_not_reach_python() -> None:
    template = "{% set ns = [] %}{% set _ = ns.append(1) %}{{ ns | length }}"
    assert render_chat(template, []) == "1"
    with pytest.raises(TemplateError):
        render_chat("{{ ''.__class__.__mro__[1].__subclasses__() }}", [])


def test_tojson_takes_generators() -> None:
    template = "{{ tools | map(attribute='function') | map(attribute='name') | list | tojson }}"
    assert render_chat(template, [], tools=TOOLS) == '["get_weather"]'
    assert render_chat(
        "{{ tools | map(attribute='function') | tojson }}", [], tools=TOOLS
    ).startswith('[{"name"')


def test_a_template_that_refuses_says_why() -> None:
    path = next(p for p in all_templates() if p.name == "google-gemma-2-2b-it.jinja")
    with pytest.raises(TemplateError, match="System role not supported"):
        render(path, [{"role": "system", "content": "s"}, *USER])
