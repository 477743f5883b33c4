"""The streaming output parser: generated text in, answer / reasoning / tool calls out.

Text arrives a token at a time; markers may be split across tokens or be several tokens
long, so text that could be the start of a marker is held back until it is known. Nothing
the model wrote is lost: a tool section that does not parse comes back as text, markers
included (and is counted in `unparsed`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal, Protocol

from cortex_neuron.dialect.call_stream import CallDelta, CallStream, folded_calls
from cortex_neuron.dialect.model import ChannelFormat, Dialect, ToolFormat
from cortex_neuron.dialect.tool_bodies import ParsedCall, parse_json_calls, parse_section

State = Literal["content", "reasoning", "tool"]
Piece = tuple[Literal["text", "reasoning"], str] | ParsedCall | CallDelta

__all__ = [
    "CallDelta",
    "CallMode",
    "OutputParser",
    "ParsedCall",
    "Piece",
    "new_parser",
    "starts_in_reasoning",
]


class OutputParser(Protocol):
    state: State
    unparsed: int

    @property
    def in_header(self) -> bool:
        """Inside a message header (a channel grammar's role, channel and recipient)."""
        ...

    def feed(self, text: str) -> list[Piece]: ...

    def finish(self) -> list[Piece]: ...


def partial_suffix(text: str, markers: Sequence[str]) -> int:
    """Length of the longest end of `text` that is a proper start of a marker."""
    best = 0
    for marker in markers:
        for size in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:size]):
                best = size
                break
    return best


def earliest(text: str, markers: Sequence[str]) -> tuple[int, str]:
    hits = [(i, m) for m in markers if m and (i := text.find(m)) >= 0]
    return min(hits, key=lambda hit: (hit[0], -len(hit[1]))) if hits else (-1, "")


def append_text(pieces: list[Piece], kind: Literal["text", "reasoning"], text: str) -> None:
    """Add text to `pieces`, merged into the last piece when it is of the same kind."""
    if pieces and isinstance(pieces[-1], tuple) and pieces[-1][0] == kind:
        pieces[-1] = (kind, pieces[-1][1] + text)
    else:
        pieces.append((kind, text))


def starts_in_reasoning(dialect: Dialect, prompt: str) -> bool:
    """Whether the prompt leaves the model inside its reasoning (the template wrote the
    opener); a close-only format always starts there."""
    reasoning = dialect.reasoning
    if reasoning is None:
        return False
    if not reasoning.open:
        return not prompt.rstrip().endswith(reasoning.close)  # unless the prompt closed it
    return prompt.rstrip().endswith(reasoning.open)


def starts_in_header(channels: ChannelFormat, prompt: str) -> bool:
    """Whether the prompt ends inside a message header (its last message was started, by
    role, and not yet given its message marker)."""
    if not channels.start:
        return False
    return prompt.rfind(channels.start) > prompt.rfind(channels.message)


class MarkerScanner:
    """The scanning loop both parsers share: text up to the earliest marker goes to
    `_take`, each marker to `_switch`; the end of the text that could still become a marker
    is held back until more text arrives."""

    _held = ""
    _names: frozenset[str] | None = None  # the tools the request offered (None: any)
    _stream_calls = False  # the client streams: calls go out as they grow
    # The open call section, read as it grows (whole answers too, so that they are the
    # fold of what a stream would have sent); whether its deltas go out now (`_live`);
    # those kept back, and whether any went out.
    _stream: CallStream | None = None
    _live = False
    _unsent: list[CallDelta]
    _sent = False
    _holding = False  # the call being read names a tool not offered

    def _markers(self) -> list[str]:
        raise NotImplementedError

    def _offered(self, name: str) -> bool:
        return self._names is None or name in self._names

    def _begin_calls(self, stream: CallStream) -> None:
        self._stream, self._live, self._unsent = stream, self._stream_calls, []
        self._sent = self._holding = False

    def _route(self, pieces: list[Piece], deltas: list[CallDelta]) -> None:
        """A streaming client gets the deltas as they come, but for a call naming a tool
        the request did not offer: that one is kept back from its first delta (it will be
        text). A whole answer keeps them all, to fold once the section ends."""
        for delta in deltas:
            if delta.opened:
                self._holding = not self._offered(delta.name)
            if self._live and not self._holding:
                pieces.append(delta)
                self._sent = True
            else:
                self._unsent.append(delta)

    def _feed_call(self, pieces: list[Piece], text: str) -> None:
        if self._stream is not None:
            self._route(pieces, self._stream.feed(text))

    def _end_calls(self, stream: CallStream, closed: bool) -> tuple[list[Piece] | None, str]:
        """A section's calls once it ended, as its stream read them (a call cut off has its
        arguments as far as they were written): what to add — calls to offered tools, and
        each call to another tool as its text — or None when no call went to an offered
        tool, or when the model `closed` the section on arguments that are not JSON (the
        whole section is text, as written); and the text after the calls. Calls a stream
        already sent stay calls: a client has them."""
        out: list[Piece] = []
        deltas, rest = stream.finish()
        self._route(out, deltas)
        kept = folded_calls(self._unsent)
        if not self._sent and not any(self._offered(call.name) for call in kept):
            return None, rest
        if not self._sent and closed and not all(_is_json(call.arguments) for call in kept):
            return None, rest
        for call in kept:
            out.append(call if self._offered(call.name) else ("text", call_text(call)))
        return out, rest

    def _take(self, pieces: list[Piece], text: str) -> None:
        raise NotImplementedError

    def _switch(self, marker: str, pieces: list[Piece]) -> None:
        raise NotImplementedError

    def _intercept(self) -> bool:
        """A chance to change state before scanning the held text (True: scan again)."""
        return False

    def _holdback(self, markers: list[str]) -> int:
        return partial_suffix(self._held, markers)

    def feed(self, text: str) -> list[Piece]:
        self._held += text
        pieces: list[Piece] = []
        while self._held:
            if self._intercept():
                continue
            markers = self._markers()
            at, marker = earliest(self._held, markers)
            if at < 0:
                keep = self._holdback(markers)
                self._take(pieces, self._held[: len(self._held) - keep])
                self._held = self._held[len(self._held) - keep :]
                break
            self._take(pieces, self._held[:at])
            self._held = self._held[at + len(marker) :]
            self._switch(marker, pieces)
        return pieces


class TagParser(MarkerScanner):
    """Reasoning between two markers, tool sections between two markers (or to the end),
    and wrapper markers dropped from the answer."""

    in_header = False  # no headers in this format

    def __init__(
        self,
        dialect: Dialect,
        in_reasoning: bool,
        schemas: Mapping[str, Mapping[str, Any]] | None = None,
        stream_calls: bool = False,
        forced: bool = False,
    ) -> None:
        self.dialect = dialect
        self._stream_calls = stream_calls
        self._forced = forced  # the output is one call the grammar frames (FORCED_CALL)
        self._names = frozenset(schemas) if schemas is not None else None
        self.state: State = "reasoning" if in_reasoning and dialect.reasoning else "content"
        self.unparsed = 0
        self._schemas = schemas or {}
        self._held = ""
        self._section: list[str] = []
        self._section_open = ""
        self._answered = False  # answer text has been emitted (bare JSON calls start a reply)
        self._watched = self._watch(dialect)
        # Reasoning is trimmed, and so is the answer's start after it (the "\n\n" models
        # write after their close marker), as llama-server and Ollama trim them: whether
        # whitespace at the start of what comes next is dropped; the reasoning's trailing
        # whitespace, held until more reasoning follows it.
        self._trim = self.state == "reasoning"
        self._trailing = ""

    def _markers(self) -> list[str]:
        return self._watched[self.state]

    @staticmethod
    def _watch(d: Dialect) -> dict[State, list[str]]:
        """The markers each state looks for (fixed for a dialect: built once)."""
        content = list(d.content_markers)
        if d.reasoning is not None and d.reasoning.open:
            content.append(d.reasoning.open)
        if d.tools is not None and d.tools.section_open:
            content.append(d.tools.section_open)
        return {
            "content": content,
            "reasoning": [d.reasoning.close] if d.reasoning else [],
            "tool": [d.tools.section_close] if d.tools and d.tools.section_close else [],
        }

    def _intercept(self) -> bool:
        return self.state == "content" and self._bare_call_starts()

    def _holdback(self, markers: list[str]) -> int:
        if self.state == "content" and self._waits_for_bare_call():
            return len(self._held)  # whitespace before what may be a bare JSON call
        return partial_suffix(self._held, markers)

    def finish(self) -> list[Piece]:
        pieces: list[Piece] = []
        held, self._held = self._held, ""
        if self.state == "tool":
            self._section.append(held)
            self._close_section(pieces, complete=False)
        else:
            self._take(pieces, held)
        return pieces

    # --- internals ----------------------------------------------------------------------

    def _tools(self) -> ToolFormat | None:
        return self.dialect.tools

    def _waits_for_bare_call(self) -> bool:
        tools = self._tools()
        return bool(tools and tools.bare and not self._answered and not self._held.strip())

    def _bare_call_starts(self) -> bool:
        tools = self._tools()
        if not (tools and tools.bare and not self._answered):
            return False
        stripped = self._held.lstrip()
        if not stripped or stripped[0] not in "{[":
            return False
        self._open_section("")
        self._held = stripped  # read again, now as the section's text
        return True

    def _open_section(self, marker: str) -> None:
        self.state, self._section_open, self._section = "tool", marker, []
        tools = self._tools()
        self._begin_calls(CallStream(tools, self._schemas))

    def _take(self, pieces: list[Piece], text: str) -> None:
        if not text:
            return
        if self.state == "tool":
            self._section.append(text)
            self._feed_call(pieces, text)
            return
        if self._trim:
            text = text.lstrip()
            if not text:
                return
            self._trim = False
        if self.state == "reasoning":
            body = text.rstrip()
            if not body:
                self._trailing += text
                return
            text, self._trailing = self._trailing + body, text[len(body) :]
            append_text(pieces, "reasoning", text)
            return
        if text.strip():
            self._answered = True
        append_text(pieces, "text", text)

    def _switch(self, marker: str, pieces: list[Piece]) -> None:
        d = self.dialect
        if self.state == "reasoning":
            self.state, self._trim, self._trailing = "content", True, ""
        elif self.state == "tool":
            self._close_section(pieces, complete=True)
        elif d.reasoning is not None and marker == d.reasoning.open:
            self.state, self._trim = "reasoning", True
        elif d.tools is not None and marker == d.tools.section_open:
            self._open_section(marker)
        # a content wrapper marker: dropped

    def _close_section(self, pieces: list[Piece], complete: bool) -> None:
        tools = self._tools()
        assert tools is not None
        body = "".join(self._section)
        self._section, self.state = [], "content"
        stream, self._stream = self._stream, None
        # (Ending the stream may open a call whose name alone was written.)
        calls, rest = self._end_calls(stream, complete) if stream is not None else (None, "")
        if stream is not None and stream.started:
            if calls is not None:
                pieces.extend(calls)
                self._trim = True  # the blank line models write between two calls is no text
                if rest.strip():  # text after the calls that no call could hold
                    self.unparsed += 1
                    self._take(pieces, rest)
                return
        elif self._forced and not complete:
            # Cut off before its name was whole: the text is the grammar's frame, not words
            # of the model's. The call, if the name so far can be only one tool's.
            pieces.extend(_named_so_far(body, self._names))
            return
        elif body.strip():  # one the stream could not read: the whole-section parser may
            parsed = parse_section(tools, body, self._schemas)
            if parsed and all(self._offered(call.name) for call in parsed):
                pieces.extend(parsed)
                return
        self.unparsed += 1
        closer = tools.section_close if complete else ""
        self._take(pieces, self._section_open + body + closer)
        self._answered = True


class ChannelParser(MarkerScanner):
    """A channel grammar: each message has a header (channel, optional recipient) and a
    body; the reasoning channel is reasoning, a recipient `functions.NAME` makes a call, any
    other channel is the answer."""

    def __init__(
        self,
        channels: ChannelFormat,
        stream_calls: bool = False,
        in_header: bool = False,
        calls: bool = True,
        names: frozenset[str] | None = None,
    ) -> None:
        self.fmt = channels
        self._stream_calls = stream_calls
        self._calls = calls  # False: a message to a recipient is text (no tools offered)
        self._names = names
        self._stream: CallStream | None = None
        self.state: State = "content"
        self.unparsed = 0
        self._held = ""
        # The prompt may end inside a message's header (after its role): the model writes
        # the rest of it (channel, recipient) before its first message marker.
        self._in_header = in_header
        self._header = ""
        self._in_body = False  # inside a message's body (its header has ended)
        self._body_kind: Literal["text", "reasoning", "call"] = "text"
        self._recipient = ""
        self._call: list[str] = []
        self._header_markers = [channels.message]
        self._body_markers = [
            channels.channel,
            *channels.ends,
            *([channels.start] if channels.start else []),
        ]

    @property
    def in_header(self) -> bool:
        return self._in_header

    def _markers(self) -> list[str]:
        return self._header_markers if self._in_header else self._body_markers

    def finish(self) -> list[Piece]:
        pieces: list[Piece] = []
        held, self._held = self._held, ""
        self._take(pieces, held)
        if self._in_header and self._header.strip():  # a header never ended: keep it
            self.unparsed += 1
            append_text(pieces, "text", self._header)
        self._end_message(pieces, closed=False)  # generation ended: a call may be cut off
        return pieces

    def _take(self, pieces: list[Piece], text: str) -> None:
        if not text:
            return
        if self._in_header:
            self._header += text
        elif self._body_kind == "call":
            self._call.append(text)
            self._feed_call(pieces, text)
        elif self._in_body or self._body_kind == "reasoning" or text.strip() or pieces:
            # A message's body keeps all its text, a lone "\n\n" token too; between
            # messages only what is not blank.
            kind: Literal["text", "reasoning"] = (
                "reasoning" if self._body_kind == "reasoning" else "text"
            )
            append_text(pieces, kind, text)

    def _switch(self, marker: str, pieces: list[Piece]) -> None:
        f = self.fmt
        if marker == f.message:
            self._in_header = False
            self._open_body()
        elif marker in (f.channel, f.start):
            # A new message: its header runs to the message marker (a role name, the
            # channel, a recipient, a constraint).
            self._end_message(pieces)
            self._in_header, self._header = True, marker
        elif marker in f.ends:
            self._end_message(pieces)

    def _open_body(self) -> None:
        header = self._header
        self._header, self._in_body = "", True
        after_channel = header.rsplit(self.fmt.channel, 1)[-1] if self.fmt.channel in header else ""
        channel = re.match(r"\s*(\w+)", after_channel)
        name = channel.group(1) if channel else ""
        # a recipient may come before the channel (in the role part) or after it
        recipient = re.search(r"to=([^\s<]+)", header)
        to = recipient.group(1) if recipient and self._calls else ""
        # A message to a tool the request did not offer is text.
        self._recipient = to if self._offered(to.split(".", 1)[-1]) else ""
        if self._recipient:
            self._body_kind, self._call = "call", []
            name = self._recipient.split(".", 1)[-1]
            self._begin_calls(CallStream(None, name=name))
        elif name == self.fmt.reasoning_channel:
            self._body_kind = "reasoning"
        else:
            self._body_kind = "text"
        self.state = "reasoning" if self._body_kind == "reasoning" else (
            "tool" if self._body_kind == "call" else "content"
        )  # fmt: skip

    def _end_message(self, pieces: list[Piece], closed: bool = True) -> None:
        stream, self._stream = self._stream, None
        if stream is not None and stream.started:
            read, rest = self._end_calls(stream, closed)  # its name was offered (_open_body)
            if read is None:  # arguments that are not JSON: the body, as text
                self.unparsed += 1
                read, rest = [("text", "".join(self._call))], ""
            pieces.extend(read)
            if rest.strip():
                self.unparsed += 1
                append_text(pieces, "text", rest)
        elif self._body_kind == "call":
            body = "".join(self._call)
            name = self._recipient.split(".", 1)[-1]
            calls = parse_json_calls(f'{{"name": {json.dumps(name)}, "arguments": {body or "{}"}}}')
            if calls:
                pieces.extend(calls)
            else:
                self.unparsed += 1
                pieces.append(("text", body))
        self._body_kind, self._call, self._recipient = "text", [], ""
        self._in_body = False
        self.state = "content"


# What a generation's calls are: read in the model's own format ("parse"); not read at all,
# the request offered no tools ("off": what the model wrote stays text, markers included);
# or forced ("forced": the grammar made the whole output one JSON call object).
CallMode = Literal["parse", "off", "forced"]
# A forced call's output: one bare JSON call, `{"name": …, "arguments": {…}}`.
FORCED_CALL = Dialect(tools=ToolFormat(kind="json", section_open=""))


_NAME_SO_FAR = re.compile(r'"name"\s*:\s*"([^"\\]*)(")?')


def _named_so_far(body: str, names: frozenset[str] | None) -> list[ParsedCall]:
    """A forced call cut off within `{"name": "…` or its arguments: the call (with no
    arguments) when its name is whole, or when the name written so far begins only one of
    `names`; else none."""
    written = _NAME_SO_FAR.search(body)
    start = written.group(1) if written else ""
    if written and written.group(2) and start in (names or ()):
        return [ParsedCall(start, "{}")]
    matching = [name for name in names or () if name.startswith(start)]
    return [ParsedCall(matching[0], "{}")] if len(matching) == 1 else []


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def call_text(call: ParsedCall) -> str:
    """A call to a tool the request did not offer, as text (its arguments as written)."""
    return f'{{"name": {json.dumps(call.name)}, "arguments": {call.arguments or "{}"}}}'


def new_parser(
    dialect: Dialect,
    prompt: str,
    schemas: Mapping[str, Mapping[str, Any]] | None = None,
    stream_calls: bool = False,
    calls: CallMode = "parse",
) -> OutputParser:
    """The parser for one generation. `stream_calls`: calls come as `CallDelta`s while
    their arguments grow; otherwise each call comes whole (`ParsedCall`), once its section
    has ended and parsed."""
    if calls == "forced":  # reasoning first, if the model reasons in tags (and was asked)
        forced = replace(FORCED_CALL, reasoning=None if dialect.channels else dialect.reasoning)
        in_reasoning = starts_in_reasoning(forced, prompt)
        return TagParser(forced, in_reasoning, schemas, stream_calls, forced=True)
    if dialect.channels is not None:
        in_header = starts_in_header(dialect.channels, prompt)
        names = frozenset(schemas) if schemas is not None else None
        return ChannelParser(dialect.channels, stream_calls, in_header, calls == "parse", names)
    if calls == "off":
        dialect = replace(dialect, tools=None)
    return TagParser(dialect, starts_in_reasoning(dialect, prompt), schemas, stream_calls)
