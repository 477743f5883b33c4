"""JSON Schema string patterns, rewritten for grammar-constrained decoding (pure).

A schema's `pattern` is a regular expression on a string's *value*, matching anywhere in it.
The grammar holds the *JSON text* the model writes, whose quote, backslash and control
characters are escaped, and llama-cpp-python's converter takes only patterns anchored at
both ends, in a small regex dialect of its own (no `\\d`, no escaped punctuation). So each
pattern becomes one on the JSON text: anchored (an open end takes any text), shorthands
spelled as classes, every character the JSON text must escape written escaped, and every
class or `.` kept from quotes, backslashes and control characters (which would end or
break the string). What decoding cannot hold (a backreference, a lookaround, a word
boundary) is refused by name, before the request is accepted.
"""

from __future__ import annotations

import re
import string
from typing import Any

# What may stand raw in a JSON string: not a quote, a backslash or a control character.
JSON_CHAR = r'[^"\\\x00-\x1F]'
_ANY_TEXT = JSON_CHAR + "*"
_UNSAFE = [(0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C)]
_UNSAFE_MEMBERS = r'"\\\x00-\x1F'  # the same, as members of a class

_DIGIT = [(0x30, 0x39)]
_WORD = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
_SPACE = [(0x20, 0x20)]  # \s: a space (the other white space is escaped in JSON text)
_CLASSES = {"d": _DIGIT, "w": _WORD, "s": _SPACE}
# A control character as the JSON text writes it (escaped), as a pattern on that text.
_JSON_ESCAPES = {"\t": r"\\t", "\n": r"\\n", "\r": r"\\r", "\b": r"\\b", "\f": r"\\f"}
_CHAR_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "v": "\v", "a": "\a"}
# Characters that may stand for themselves in the converter's dialect.
_PLAIN = set(string.ascii_letters + string.digits + " !#%&',:;<=>@_`~/")
_NOT_HELD = {
    "b": "a word boundary", "B": "a word boundary", "A": "an anchor", "Z": "an anchor",
    "z": "an anchor", "G": "an anchor", "p": "a Unicode property", "P": "a Unicode property",
    "k": "a backreference",
}  # fmt: skip


class PatternError(ValueError):
    """A pattern decoding cannot hold; the message says which and why."""


# Keywords whose values are data, not schemas; and those whose values map names to schemas
# (a property may be named "default" or "pattern").
_VALUES = frozenset({"const", "enum", "default", "examples"})
_NAMED = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
# The most repetitions a grammar holds: llama.cpp's parser refuses a rule repeated past
# 2000 symbols in all, and its stack overflows on a converter's string of ~20000.
MAX_REPEAT = 1000
_LENGTHS = ("minLength", "maxLength", "minItems", "maxItems")


def json_safe_patterns(schema: Any) -> Any:
    """`schema` with each string `pattern` rewritten for the grammar (see the module), its
    length bounds checked against what a grammar holds."""
    if isinstance(schema, list):
        return [json_safe_patterns(item) for item in schema]
    if isinstance(schema, str) and "\x00" in schema:  # llama.cpp's grammar ends text there
        raise PatternError(f"{schema!r} holds a NUL character, which decoding cannot write")
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        json_safe_patterns(key)
        if key in _VALUES:
            json_safe_patterns(value)  # (for its NULs)
            out[key] = value
        elif key in _NAMED and isinstance(value, dict):
            out[key] = {
                json_safe_patterns(name): json_safe_patterns(inner) for name, inner in value.items()
            }
        else:
            out[key] = json_safe_patterns(value)
    for key in _LENGTHS:
        bound = out.get(key)
        if isinstance(bound, int) and not isinstance(bound, bool) and bound > MAX_REPEAT:
            raise PatternError(f"{key} {bound} is more than decoding holds ({MAX_REPEAT})")
    for low, high in (("minLength", "maxLength"), ("minItems", "maxItems")):
        if _above(out.get(low), out.get(high)):
            raise PatternError(f"{low} {out[low]} is above {high} {out[high]}: nothing fits")
    pattern = out.get("pattern")
    if isinstance(pattern, str):
        try:
            out["pattern"] = json_text_pattern(pattern)
        except PatternError as error:
            raise PatternError(f"the pattern {pattern!r} {error}") from None
    return out


def _above(low: object, high: object) -> bool:
    numbers = [v for v in (low, high) if isinstance(v, int) and not isinstance(v, bool)]
    return len(numbers) == 2 and numbers[0] > numbers[1]


def json_text_pattern(pattern: str) -> str:
    """The anchored pattern, on JSON string text, for a pattern on the string's value."""
    alternatives = [_anchored(alt) for alt in _top_alternatives(pattern)]
    body = alternatives[0] if len(alternatives) == 1 else "(" + "|".join(alternatives) + ")"
    return f"^{body}$"


def _anchored(pattern: str) -> str:
    starts = pattern.startswith("^")
    ends = pattern.endswith("$") and _escapes_before(pattern, len(pattern) - 1) % 2 == 0
    body = _rewritten(pattern[int(starts) : len(pattern) - int(ends)])
    group = f"({body})" if body else ""
    return f"{'' if starts else _ANY_TEXT}{group}{'' if ends else _ANY_TEXT}"


def _escapes_before(text: str, index: int) -> int:
    count = 0
    while index - count - 1 >= 0 and text[index - count - 1] == "\\":
        count += 1
    return count


def _top_alternatives(pattern: str) -> list[str]:
    """`pattern` split at each `|` outside groups and classes."""
    parts, start, depth, index = [], 0, 0, 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if char == "[":
            index = _class_end(pattern, index + 1)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(pattern[start:index])
            start = index + 1
        index += 1
    parts.append(pattern[start:])
    return parts


def _class_end(pattern: str, index: int) -> int:
    """The index after the `]` of the class opened just before `index`."""
    index += pattern.startswith("^", index)
    index += 1  # its first member, even a "]"
    while index < len(pattern) and pattern[index] != "]":
        index += 2 if pattern[index] == "\\" else 1
    return index + 1


def _rewritten(pattern: str) -> str:
    out: list[str] = []
    index, depth = 0, 0  # how many groups are open
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            if index + 1 >= len(pattern):
                raise PatternError("ends with a lone backslash")
            piece, index = _escape(pattern, index + 1)
            out.append(piece)
            continue
        if char == "[":
            piece, index = _class(pattern, index + 1)
            out.append(piece)
            continue
        if char == "(" and pattern.startswith("(?", index):
            if not pattern.startswith("(?:", index):
                raise PatternError("uses a lookaround or group flags, which decoding cannot hold")
            out.append("(")
            index, depth = index + 3, depth + 1
            continue
        if char in "^$":
            raise PatternError(f"has {char!r} inside it, which decoding cannot hold")
        if char == "{":
            quantifier = _QUANTIFIER.match(pattern, index)
            if quantifier and out and out[-1] not in ("(", "|"):  # after something to repeat
                counts = [int(n) for n in quantifier.groups() if n]
                if max(counts) > MAX_REPEAT:
                    raise PatternError(f"repeats more than decoding holds ({MAX_REPEAT})")
                if len(counts) == 2 and counts[0] > counts[1]:
                    raise PatternError(f"has {quantifier.group(0)}, whose least is above its most")
                out.append(quantifier.group(0))
                index = quantifier.end()
                continue
            out.append(_literal(char))  # a brace that is no quantifier is itself
        elif char == ".":
            out.append(JSON_CHAR)
        elif char in "*+?" and (not out or out[-1] in ("(", "|")):
            raise PatternError(f"has a {char!r} with nothing before it to repeat")
        elif char in "()|*+?":
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth < 0:
                raise PatternError("has a ')' that closes no group")
            out.append(char)
        else:
            out.append(_literal(char))  # "}" outside a quantifier too
        index += 1
    if depth:
        raise PatternError("has a '(' that is never closed")
    return "".join(out)


_QUANTIFIER = re.compile(r"\{(\d+)(?:,(\d*))?\}")


def _escape(pattern: str, index: int) -> tuple[str, int]:
    """The escape whose letter is at `index` (after its backslash); the index after it."""
    letter = pattern[index]
    if letter.lower() in _CLASSES:
        ranges = _CLASSES[letter.lower()]
        if letter.islower():
            return _class_text(ranges, negated=False), index + 1
        return "[^" + _members(ranges) + _UNSAFE_MEMBERS + "]", index + 1
    char, after = _escaped_char(pattern, index)
    return _literal(char), after


def _escaped_char(pattern: str, index: int) -> tuple[str, int]:
    """The one character an escape stands for (a letter's meaning, a hex code, or the
    character itself); refuses what is not one character."""
    letter = pattern[index]
    if letter in _CHAR_ESCAPES:
        return _CHAR_ESCAPES[letter], index + 1
    if letter in "xu":
        size = 2 if letter == "x" else 4
        digits = pattern[index + 1 : index + 1 + size]
        if len(digits) != size or not all(d in string.hexdigits for d in digits):
            raise PatternError(f"has a bad \\{letter} escape")
        return _character(int(digits, 16)), index + 1 + size
    if letter.isdigit():
        raise PatternError("uses a backreference, which decoding cannot hold")
    if letter in _NOT_HELD:
        raise PatternError(f"uses \\{letter} ({_NOT_HELD[letter]}), which decoding cannot hold")
    if letter.isalnum():
        raise PatternError(f"uses \\{letter}, which is not a regular expression escape")
    return letter, index + 1


def _character(code: int) -> str:
    if 0xD800 <= code <= 0xDFFF:
        raise PatternError("has a lone surrogate, which is no character")
    return chr(code)


def _literal(char: str) -> str:
    """One character of the value, as a pattern on its JSON text."""
    _character(ord(char))
    # (several characters of text: a group, so that a quantifier after it takes them all)
    if char == '"':
        return r"(\\\")"  # the text has \" (the converter's dialect: \\ and then \")
    if char == "\\":
        return r"(\\\\)"
    if char in _JSON_ESCAPES:
        return f"({_JSON_ESCAPES[char]})"
    if ord(char) < 0x20:
        return rf"(\\u{ord(char):04x})"
    if char in _PLAIN or ord(char) > 0x7F:
        return char
    return f"[{_code(ord(char))}]"  # punctuation the dialect would read as an operator


def _class(pattern: str, index: int) -> tuple[str, int]:
    """The class opened just before `index`: its text, and the index after its `]`."""
    negated = pattern.startswith("^", index)
    index += negated
    ranges: list[tuple[int, int]] = []
    first = True
    while True:
        if index >= len(pattern):
            raise PatternError("has a '[' that is never closed")
        char = pattern[index]
        if char == "]" and not first:
            break
        first = False
        if char == "\\" and index + 1 < len(pattern) and pattern[index + 1].lower() in _CLASSES:
            letter = pattern[index + 1]
            if letter.isupper():
                raise PatternError(f"has \\{letter} inside [...], which decoding cannot hold")
            ranges.extend(_CLASSES[letter])
            index += 2
            continue
        low, index = _class_char(pattern, index)
        high = low
        if pattern.startswith("-", index) and not pattern.startswith("-]", index):
            high, index = _class_char(pattern, index + 1)
            if high < low:
                raise PatternError("has a range whose end comes before its start")
        ranges.append((low, high))
    return _class_text(ranges, negated), index + 1


def _class_char(pattern: str, index: int) -> tuple[int, int]:
    if index >= len(pattern):
        raise PatternError("has a '[' that is never closed")
    if pattern[index] == "\\":
        if index + 1 >= len(pattern):
            raise PatternError("ends with a lone backslash")
        char, after = _escaped_char(pattern, index + 1)
        return ord(char), after
    return ord(pattern[index]), index + 1


def _class_text(ranges: list[tuple[int, int]], negated: bool) -> str:
    if negated:
        return "[^" + _members(ranges) + _UNSAFE_MEMBERS + "]"
    safe = _without(ranges, _UNSAFE)
    if not safe:
        raise PatternError("has a class of only characters a JSON string escapes")
    return "[" + _members(safe) + "]"


def _without(ranges: list[tuple[int, int]], taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for low, high in ranges:
        pieces = [(low, high)]
        for cut_low, cut_high in taken:
            pieces = [
                piece
                for a, b in pieces
                for piece in ((a, min(b, cut_low - 1)), (max(a, cut_high + 1), b))
                if piece[0] <= piece[1]
            ]
        out.extend(pieces)
    return out


def _members(ranges: list[tuple[int, int]]) -> str:
    return "".join(
        _code(low) if low == high else f"{_code(low)}-{_code(high)}" for low, high in ranges
    )


def _code(code: int) -> str:
    """A character as a class member both llama.cpp's grammar and Python's re read."""
    char = chr(code)
    if char.isascii() and char.isalnum():
        return char
    if code < 0x100:
        return f"\\x{code:02X}"
    if code < 0x10000:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"
