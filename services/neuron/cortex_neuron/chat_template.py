"""Rendering a chat into a prompt with the model's own Jinja chat template (pure)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Used only when a GGUF carries no template of its own.
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class TemplateError(ValueError):
    """The chat could not be rendered (the template raised, or is itself broken)."""


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now(UTC).strftime(fmt)


def _tojson(
    value: Any, indent: int | None = None, ensure_ascii: bool = False, sort_keys: bool = False
) -> str:
    # Jinja's own tojson returns Markup, and `'<|im_start|>' + (x | tojson)` would then
    # HTML-escape the template's literal text. Templates expect plain JSON text.
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys)


@cache
def _compile(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(f"the model's chat template does not compile: {error}") from None


def render_chat(
    template: str | None,
    messages: Sequence[Mapping[str, Any]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    template_kwargs: Mapping[str, Any] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """The prompt text for `messages`, ending where the assistant's reply begins."""
    variables: dict[str, Any] = dict(template_kwargs or {})
    variables.update(
        messages=[dict(m) for m in messages],
        add_generation_prompt=True,
        bos_token=bos_token,
        eos_token=eos_token,
    )
    if tools:
        variables["tools"] = [dict(t) for t in tools]
    try:
        return _compile(template or CHATML).render(**variables)
    except TemplateError:
        raise
    except jinja2.TemplateError as error:
        raise TemplateError(f"the model's chat template failed: {error}") from None
