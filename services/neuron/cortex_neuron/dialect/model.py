"""What a dialect says (plain data, built by `probe`, read by `parser` and `history`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ToolKind = Literal["json", "tagged_json", "tagged_args", "python"]


@dataclass(frozen=True)
class ReasoningFormat:
    """Reasoning between `open` and `close` (any tokenization). `open` may be "" for
    templates whose models only ever write the close delimiter."""

    open: str
    close: str
    source: Literal["template", "vocabulary"] = "template"


@dataclass(frozen=True)
class ToolFormat:
    """How a model writes tool calls, as learned from its template rendering a call.

    A section starts at `section_open` and ends at `section_close` ("" = at the end of the
    generation). Inside it, each call is `call_open NAME name_close ARGS call_close`:
    - json: the section holds JSON values ({"name", "arguments"} objects or lists of them)
    - tagged_json: ARGS is a JSON object after the name (`id_open ID id_close` may sit
      between name and arguments)
    - tagged_args: ARGS are `arg_open KEY arg_mid VALUE arg_close` pairs
    - python: the section holds call expressions, `[name(key=value, …), …]`
    `name_in_id`: the name is written inside a call id (`prefix.NAME:INDEX`).
    `id_before`: the call's id comes first, ended by this marker, then the name.
    `string_quote`: tagged_json arguments have bare keys and this marker around strings."""

    kind: ToolKind
    section_open: str
    section_close: str = ""
    call_open: str = ""
    name_close: str = ""
    call_close: str = ""
    id_open: str = ""
    id_close: str = ""
    arg_open: str = ""
    arg_mid: str = ""
    arg_close: str = ""
    name_in_id: bool = False
    id_before: str = ""
    string_quote: str = ""

    @property
    def bare(self) -> bool:
        """JSON calls with no marker: a reply that is a JSON call from its first character."""
        return self.kind == "json" and not self.section_open

    def describe(self) -> str:
        start = self.section_open or "(bare)"
        return f"{self.kind} {start}{' … ' + self.section_close if self.section_close else ''}"


@dataclass(frozen=True)
class ChannelFormat:
    """A channel grammar: messages `[start ROLE] channel NAME [to=RECIPIENT] message BODY end`;
    the reasoning channel is reasoning, others are the answer, a recipient makes a call."""

    start: str
    channel: str
    message: str
    ends: tuple[str, ...]
    constrain: str = ""
    reasoning_channel: str = "analysis"
    # What the model writes to close its reasoning and begin the answer (budget ends).
    answer_header: str = ""


@dataclass(frozen=True)
class Dialect:
    reasoning: ReasoningFormat | None = None
    tools: ToolFormat | None = None
    channels: ChannelFormat | None = None
    # Markers wrapped around the answer (dropped from the content).
    content_markers: tuple[str, ...] = ()
    # Template variables: the thinking switch (bool) and the effort level ("low"…"high").
    thinking_switches: tuple[str, ...] = ()
    effort_variable: str = ""
    # Template variable: the reasoning budget in tokens (0: no thinking).
    budget_variable: str = ""
    # History: the field an assistant message's reasoning goes back in ("" = not kept).
    reasoning_field: str = ""
    # History: tool-call arguments as a JSON string rather than an object.
    arguments_as_text: bool = False
    # History: call ids rewritten to what the template accepts ("" = as they are).
    call_id_style: Literal["", "alnum9"] = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def markers(self) -> tuple[str, ...]:
        """Every marker text the output parser looks for (to render their special tokens)."""
        found: list[str] = list(self.content_markers)
        if self.reasoning is not None:
            found += [self.reasoning.open, self.reasoning.close]
        if self.tools is not None:
            t = self.tools
            found += [t.section_open, t.section_close, t.call_open, t.name_close, t.call_close,
                      t.id_open, t.id_close, t.arg_open, t.arg_mid, t.arg_close,
                      t.id_before, t.string_quote]  # fmt: skip
        if self.channels is not None:
            c = self.channels
            found += [c.start, c.channel, c.message, c.constrain, *c.ends]
        return tuple(dict.fromkeys(m for m in found if m))

    def inline_markers(self) -> list[str]:
        """[open, close] for clients that want reasoning inline (x-include-thinking)."""
        if self.channels is not None:
            c = self.channels
            return [f"{c.channel}{c.reasoning_channel}{c.message}", c.ends[0]]
        if self.reasoning is not None:
            return [self.reasoning.open, self.reasoning.close]
        return []

    def summary(self) -> dict[str, str]:
        """What cortex understood of the model, for /v1/models and heartbeats."""
        if self.channels is not None:
            reasoning, tools = "channels", "channels"
        else:
            r = self.reasoning
            reasoning = f"{r.open}…{r.close}" if r else ""
            tools = self.tools.describe() if self.tools else ""
        return {
            "reasoning": reasoning,
            "tools": tools,
            "thinking_switch": ", ".join(self.thinking_switches),
            "effort_variable": self.effort_variable,
            "budget_variable": self.budget_variable,
        }
