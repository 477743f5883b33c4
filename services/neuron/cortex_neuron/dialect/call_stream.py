"""Tool calls streamed as their arguments grow (pure).

A streaming client sees a call's name as soon as the model has written it, then its
arguments a piece at a time, the way hosted APIs stream them. `CallStream` reads one tool
section as it arrives and says what is known so far: a call opens (`CallDelta` with its
name), its arguments grow (JSON text, exactly as the model wrote it for JSON formats;
built as JSON from tagged key/value pairs), and it closes.

It only commits to what the format makes certain: text it cannot read yet waits for more,
and a section it cannot read at all is left to the whole-section parser (`tool_bodies`),
which keeps unparseable text as text. Once a call has opened, what follows is the call's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cortex_neuron.dialect.model import ToolFormat
from cortex_neuron.dialect.tool_bodies import (
    ARGUMENT_FIELDS,
    NAME_FIELDS,
    ParsedCall,
    argument_value,
    name_of,
    pattern,
    repeated_opener,
)

_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class CallDelta:
    """Part of a streamed call: the first delta carries the name (`opened`), later ones
    more arguments text; the last one is `closed`."""

    name: str
    arguments: str
    opened: bool = False
    closed: bool = False


class JsonExtent:
    """Where one JSON value that is being written ends: fed text, it answers how much of it
    belongs to the value (strings and nesting followed; nothing is parsed)."""

    def __init__(self) -> None:
        self.depth = 0
        self.ended = False
        self._in_string = False
        self._escaped = False

    def take(self, text: str) -> int:
        for i, char in enumerate(text):
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self.depth += 1
            elif char in "}]":
                self.depth -= 1
                if self.depth == 0:
                    self.ended = True
                    return i + 1
        return len(text)


def folded_calls(deltas: list[CallDelta]) -> list[ParsedCall]:
    """Streamed deltas as the whole calls they make (the arguments as written: a call cut
    off mid-way has JSON that does not end)."""
    calls: list[tuple[str, list[str]]] = []
    for delta in deltas:
        if delta.opened or not calls:
            calls.append((delta.name, []))
        calls[-1][1].append(delta.arguments)
    return [ParsedCall(name, "".join(parts)) for name, parts in calls]


Step = Literal["call", "json_args", "json_members", "arg", "arg_text", "arg_value", "failed"]


class CallStream:
    """One tool section, read as it arrives (see the module docstring). `started` says
    whether any call has opened; if not when the section ends, the caller parses it whole."""

    def __init__(
        self,
        fmt: ToolFormat | None,
        schemas: Mapping[str, Mapping[str, Any]] | None = None,
        name: str = "",
    ) -> None:
        self.fmt = fmt
        self.started = False
        self._schemas = schemas or {}
        self._text = ""
        self._at = 0  # text before this index has been read
        self._name = name
        self._open = False
        self._json: JsonExtent | None = None
        self._key = ""
        self._keys = 0  # tagged arguments written so far in the open call
        self._value_began = False
        self._step: Step = "json_args" if name else "call"
        if name:  # the call's name came from elsewhere (a channel header): arguments only
            self._json = JsonExtent()

    def feed(self, text: str) -> list[CallDelta]:
        self._text += text
        out: list[CallDelta] = []
        while self._step != "failed" and self._advance(out):
            pass
        if self._at and self.started:  # what was read is gone: a long call stays O(n)
            self._text, self._at = self._text[self._at :], 0
        return out

    def finish(self) -> tuple[list[CallDelta], str]:
        """The section has ended: close an open call; return what could not be read (text
        after the last call, or everything if no call ever opened)."""
        out: list[CallDelta] = []
        if self._open:
            out.append(CallDelta(self._name, self._closing_text(), closed=True))
            self._open = False
        elif self._step == "json_args" and self._name and not self._rest().strip():
            # The name was written, its arguments never began (the generation ended
            # there): the call, with none.
            self._opens(out, self._name)
            self._closes(out, "{}")
        rest = self._text[self._at :]
        return out, ("" if self.started and not rest.strip() else rest)

    def _closing_text(self) -> str:
        """What makes a call cut off by the section's end whole: tagged arguments are ours
        to close; JSON arguments stay as the model wrote them."""
        if self.fmt is None or self.fmt.kind != "tagged_args":
            return ""
        if self._step == "arg_text":
            return '"}'
        if self._step == "arg_value":
            pending = self._rest()
            self._at = len(self._text)
            return json.dumps(pending, ensure_ascii=False) + "}"
        return "}" if self._keys else "{}"

    # --- steps (each returns True when it made progress) --------------------------------

    def _advance(self, out: list[CallDelta]) -> bool:
        step = self._step
        if step == "call":
            return self._call_head(out)
        if step == "json_args":
            return self._json_args(out)
        if step == "json_members":
            return self._json_members(out)
        if step == "arg":
            return self._arg_head(out)
        if step == "arg_text":
            return self._arg_text(out)
        return self._arg_value(out)

    def _rest(self) -> str:
        return self._text[self._at :]

    def _fail(self) -> bool:
        self._step = "failed"
        return False

    def _opens(self, out: list[CallDelta], name: str, arguments: str = "") -> None:
        self.started, self._open, self._name = True, True, name
        out.append(CallDelta(name, arguments, opened=True))

    def _closes(self, out: list[CallDelta], arguments: str = "") -> None:
        out.append(CallDelta(self._name, arguments, closed=True))
        self._open = False
        self._step = "call"

    def _call_head(self, out: list[CallDelta]) -> bool:
        fmt = self.fmt
        rest = self._rest()
        if fmt is None or not rest.strip():
            return False
        if fmt.kind == "python" or fmt.string_quote:
            return self._fail()  # read whole when the section ends
        if fmt.kind == "json":
            lead = re.match(r"[\s,;\[\]]*", rest)
            assert lead is not None
            if lead.end() == len(rest):
                self._at += lead.end()  # separators between calls
                return False
            if rest[lead.end()] != "{":
                return self._fail()
            self._at += lead.end() + 1
            self._name, self._step = "", "json_members"
            return True
        again = repeated_opener(fmt, rest)
        if again:
            self._at += len(again)
            return True
        opener = fmt.section_open if not fmt.section_close else ""
        if opener and pattern_may_start(rest.lstrip(), opener) and len(rest.lstrip()) < len(opener):
            return False  # it may be the opener written again: wait for it
        if fmt.call_close:  # the previous call's end, if it arrived after its arguments
            closing = re.match(r"\s*" + pattern(fmt.call_close), rest)
            if closing is not None:
                self._at += closing.end()
                return True
            if pattern_may_start(rest.lstrip(), fmt.call_close) and not (
                fmt.call_open and pattern_may_start(rest.lstrip(), fmt.call_open)
            ):
                return False
        head = rest
        if fmt.call_open:
            opening = re.match(r"\s*" + pattern(fmt.call_open), rest)
            if opening is None:
                return False if pattern_may_start(rest.lstrip(), fmt.call_open) else self._fail()
            head = rest[opening.end() :]
        name, after = name_of(fmt, head)
        if name is None:
            return False  # the name's end has not arrived yet
        self._at += len(rest) - len(after)
        if fmt.kind == "tagged_json":  # opens at its arguments' first brace
            self._name, self._json, self._step = name, JsonExtent(), "json_args"
        else:
            self._opens(out, name)
            self._keys, self._step = 0, "arg"
        return True

    def _json_args(self, out: list[CallDelta]) -> bool:
        extent = self._json
        assert extent is not None
        rest = self._rest()
        if extent.depth == 0 and not extent.ended:
            lead = re.match(r"[\s`]*(?:json\s*)?", rest)
            assert lead is not None
            if lead.end() == len(rest):
                return False
            if rest[lead.end()] != "{":
                return self._fail()
            self._at += lead.end()
            rest = rest[lead.end() :]
            if not self._open:
                self._opens(out, self._name)
        used = extent.take(rest)
        if used:
            out.append(CallDelta(self._name, rest[:used]))
        self._at += used
        if not extent.ended:
            return False
        if self.fmt is not None and self.fmt.kind == "json":
            self._step = "json_members"
            return True
        self._skip_call_close()
        self._closes(out)
        return True

    def _skip_call_close(self) -> None:
        fmt = self.fmt
        if fmt is not None and fmt.call_close:
            closing = re.match(r"\s*" + pattern(fmt.call_close), self._rest())
            if closing is not None:
                self._at += closing.end()

    def _json_members(self, out: list[CallDelta]) -> bool:
        """Inside a JSON call object: scalar members are read whole; the arguments object
        streams once the name is known."""
        rest = self._rest()
        lead = re.match(r"[\s,]*", rest)
        assert lead is not None
        at = lead.end()
        if at == len(rest):
            return False
        if rest[at] == "}":
            self._at += at + 1
            if not self._open:
                return self._fail()  # a call object without arguments: parse it whole
            self._closes(out)
            return True
        if rest[at] != '"':
            return self._fail()
        member = re.match(r'("(?:[^"\\]|\\.)*")\s*:\s*', rest[at:])
        if member is None:
            return False  # the key is still being written
        key = json.loads(member.group(1))
        value_at = at + member.end()
        if value_at == len(rest):
            return False
        by_name = key in self._schemas and not self._name  # {"NAME": {arguments}}
        if (key in ARGUMENT_FIELDS or by_name) and rest[value_at] == "{" and not self._open:
            if by_name:
                self._name = key
            if not self._name:
                return self._fail()  # arguments before the name: parse it whole
            self._at += value_at
            self._opens(out, self._name)
            self._json, self._step = JsonExtent(), "json_args"
            return True
        try:
            value, end = _DECODER.raw_decode(rest, value_at)
        except ValueError:
            return False  # the value is still being written
        if end == len(rest) and not isinstance(value, str | dict | list):
            return False  # a number or a literal may go on
        if key in NAME_FIELDS and isinstance(value, str):
            self._name = value.strip()
        elif key in ARGUMENT_FIELDS or key == "function":
            return self._fail()  # arguments as a string, or the nested shape: parse whole
        self._at += end
        return True

    def _arg_head(self, out: list[CallDelta]) -> bool:
        fmt = self.fmt
        assert fmt is not None
        rest = self._rest()
        if not rest.strip():
            return False
        closing = re.match(r"\s*" + pattern(fmt.call_close), rest) if fmt.call_close else None
        if closing is not None:
            self._at += closing.end()
            self._closes(out, "}" if self._keys else "{}")
            return True
        key = re.match(r"\s*" + pattern(fmt.arg_open) + r"(.*?)" + pattern(fmt.arg_mid), rest, re.S)
        if key is None:
            markers = [fmt.arg_open, fmt.call_close]
            if any(pattern_may_start(rest.lstrip(), m) for m in markers if m):
                return False
            if not fmt.call_close:  # the section's end closes the call
                return False
            return self._fail()
        self._key = key.group(1).strip()
        self._at += key.end()
        schema = self._schemas.get(self._name, {})
        properties = schema.get("properties", {}) if isinstance(schema, Mapping) else {}
        declared = properties.get(self._key, {})
        is_text = isinstance(declared, Mapping) and declared.get("type") == "string"
        lead = "{" if self._keys == 0 else ", "
        self._keys += 1
        if is_text:
            out.append(CallDelta(self._name, f'{lead}{json.dumps(self._key)}: "'))
            self._value_began, self._step = False, "arg_text"
        else:
            out.append(CallDelta(self._name, f"{lead}{json.dumps(self._key)}: "))
            self._step = "arg_value"
        return True

    def _arg_text(self, out: list[CallDelta]) -> bool:
        """A string argument: its text streams, escaped, as it arrives. One newline at
        either end belongs to the layout and is dropped (as `argument_value` does), so a
        trailing newline waits until what follows it is known."""
        fmt = self.fmt
        assert fmt is not None
        rest = self._rest()
        end = re.search(pattern(fmt.arg_close), rest)
        if end is not None:
            available = rest[: end.start()]
        else:
            available = rest[: len(rest) - partial_marker_suffix(rest, fmt.arg_close)]
        lead = 1 if not self._value_began and available.startswith("\n") else 0
        body = available[lead:]
        if end is not None:
            text = body[:-1] if body.endswith("\n") else body
            out.append(CallDelta(self._name, _escaped(text) + '"'))
            self._at += end.end()
            self._step = "arg"
            return True
        piece = body[:-1] if body.endswith("\n") else body
        if piece:
            out.append(CallDelta(self._name, _escaped(piece)))
        if lead or piece:
            self._value_began = True
        self._at += lead + len(piece)
        return False

    def _arg_value(self, out: list[CallDelta]) -> bool:
        """An argument of another type: read whole at its close, then written as JSON."""
        fmt = self.fmt
        assert fmt is not None
        rest = self._rest()
        end = re.search(pattern(fmt.arg_close), rest)
        if end is None:
            return False
        schema = self._schemas.get(self._name, {})
        properties = schema.get("properties", {}) if isinstance(schema, Mapping) else {}
        value = argument_value(rest[: end.start()], properties.get(self._key))
        out.append(CallDelta(self._name, json.dumps(value, ensure_ascii=False)))
        self._at += end.end()
        self._step = "arg"
        return True


def _escaped(text: str) -> str:
    """`text` as it reads inside a JSON string."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def pattern_may_start(text: str, marker: str) -> bool:
    """Whether `text` could still grow into `marker` (or already begins with it)."""
    return marker.startswith(text[: len(marker)]) or text.startswith(marker)


def partial_marker_suffix(text: str, marker: str) -> int:
    """Length of the end of `text` that could be the start of `marker`."""
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:size]):
            return size
    return 0
