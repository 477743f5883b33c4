"""Rendering a chat into a prompt with the model's own Jinja chat template (pure).

Templates are rendered the way Hugging Face's `apply_chat_template` renders them: a
sandboxed Jinja environment with `trim_blocks`, `lstrip_blocks`, loop controls (`break`,
`continue`), the `{% generation %}` block, `raise_exception`, `strftime_now` and a `tojson`
that writes plain JSON. Templates that append to lists (`ns.items.append(x)`) are common,
so the sandbox allows mutating the template's own lists; attribute access stays guarded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment

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


def _json_default(value: Any) -> Any:
    if isinstance(value, jinja2.Undefined):
        return None
    if isinstance(value, Iterable):  # `tools | map(attribute='function') | tojson`
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _tojson(
    value: Any, indent: int | None = None, ensure_ascii: bool = False, sort_keys: bool = False
) -> str:
    # Jinja's own tojson returns Markup, and `'<|im_start|>' + (x | tojson)` would then
    # HTML-escape the template's literal text. Templates expect plain JSON text.
    return json.dumps(
        value, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys,
        default=_json_default,
    )  # fmt: skip


class GenerationBlock(jinja2.ext.Extension):
    """`{% generation %}…{% endgeneration %}` marks the assistant's tokens for training
    masks; for rendering a prompt it is its body, unchanged."""

    tags = {"generation"}

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


@cache
def environment() -> SandboxedEnvironment:
    """The one Jinja environment every template compiles in (see the module docstring)."""
    env = SandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[jinja2.ext.loopcontrols, GenerationBlock],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


@cache
def compile_template(source: str) -> jinja2.Template:
    """The compiled template; TemplateError (with Jinja's reason) if it does not compile."""
    try:
        return environment().from_string(source)
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(f"the model's chat template does not compile: {error}") from None


def render_template(template: str | None, variables: Mapping[str, Any]) -> str:
    """Render with exactly `variables`; every failure is a TemplateError saying why."""
    try:
        return compile_template(template or CHATML).render(**variables)
    except TemplateError:
        raise
    except jinja2.TemplateError as error:
        raise TemplateError(f"the model's chat template failed: {error}") from None
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as error:
        raise TemplateError(
            f"the model's chat template failed: {type(error).__name__}: {error}"
        ) from None


def render_chat(
    template: str | None,
    messages: Sequence[Mapping[str, Any]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    template_kwargs: Mapping[str, Any] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    add_generation_prompt: bool = True,
) -> str:
    """The prompt text for `messages`, ending where the assistant's reply begins."""
    variables: dict[str, Any] = dict(template_kwargs or {})
    variables.update(
        messages=[dict(m) for m in messages],
        add_generation_prompt=add_generation_prompt,
        bos_token=bos_token,
        eos_token=eos_token,
    )
    if tools:
        variables["tools"] = [dict(t) for t in tools]
    return render_template(template, variables)
