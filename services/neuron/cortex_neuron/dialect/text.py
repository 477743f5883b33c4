"""Text helpers for reading markers out of rendered templates (pure)."""

from __future__ import annotations

import re

from cortex_neuron.dialect.model import Dialect

# What a marker looks like in a rendered template: <|…|> (also with fullwidth bars), [WORD],
# <tag>, </tag>, <ns:tag>, <tag|>, <|tag>. Attribute-style openers (`<function=`) are not
# markers by themselves; the probe takes them as the literal text that precedes a name.
MARKER = re.compile(
    r"<\|[^<>|\s]{1,40}\|>"
    r"|<\uff5c[^<>\uff5c]{1,40}\uff5c>|</?\uff5c[^<>\s]{1,40}>"
    r"|\[/?[A-Z][A-Z_]{1,30}\]"
    r"|</?[A-Za-z_][\w:.\-]{0,40}>"
    r"|<\|[\w\-]{1,40}>|<[\w\-]{1,40}\|>"
)


def marker_texts(dialect: Dialect) -> list[str]:
    """Each marker of a dialect, and each marker-like part of the longer ones (so the
    special tokens inside `<|tool_call_begin|>functions.` are found too)."""
    texts: list[str] = []
    for marker in dialect.markers():
        texts += [marker, *(m.group(0) for m in markers_in(marker))]
    return list(dict.fromkeys(texts))


def markers_in(text: str) -> list[re.Match[str]]:
    return list(MARKER.finditer(text))


def first_marker(text: str) -> str:
    """The marker `text` starts with (after whitespace), or ""."""
    stripped = text.lstrip()
    match = MARKER.match(stripped)
    return match.group(0) if match else ""


def last_marker(text: str) -> str:
    """The marker `text` ends with (before whitespace), or ""."""
    stripped = text.rstrip()
    found = [m for m in markers_in(stripped) if m.end() == len(stripped)]
    return found[-1].group(0) if found else ""


def common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def common_suffix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return a[len(a) - n :]


def whole_markers_prefix(text: str) -> str:
    """`text` cut back so it does not end inside a marker it only partly holds."""
    for opener, closer in (("<", ">"), ("[", "]")):
        at = text.rfind(opener)
        if at >= 0 and closer not in text[at:]:
            text = text[:at]
    return text


def whole_markers_suffix(text: str) -> str:
    """`text` cut so it does not start inside a marker it only partly holds."""
    close_at = min((i for i in (text.find(">"), text.find("]")) if i >= 0), default=-1)
    if close_at >= 0 and not any(m.start() <= close_at < m.end() for m in markers_in(text)):
        return text[close_at + 1 :]
    return text
