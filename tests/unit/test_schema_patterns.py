"""JSON Schema patterns rewritten for constrained decoding (pure): a rewritten pattern holds
the JSON text of a string, so it must match the text of every value the pattern takes
that a grammar can write, and of none it refuses; and never a text that is not JSON."""

import itertools
import json
import re

import pytest

from cortex_neuron.schema_patterns import PatternError, json_safe_patterns, json_text_pattern

# Values to try each pattern on: every string of up to three of these characters.
ALPHABET = [
    "a",
    "Z",
    "1",
    "9",
    "_",
    ".",
    "-",
    "$",
    " ",
    "!",
    "{",
    "}",
    '"',
    "\\",
    "\n",
    "\t",
    "é",
    "]",
]
VALUES = ["".join(p) for size in range(4) for p in itertools.product(ALPHABET, repeat=size)]

PATTERNS = [
    r"\d",  # matches anywhere: open at both ends
    r"^\d+$",
    r"^a",
    r"a$",
    r"^\w+\s\d$",
    r"^\D\S$",
    r"^\W$",
    r"^[\d.-]+$",
    r"^\d\.\d$",
    r"^\$?\d+$",
    r"^a\\$",  # a literal backslash, then the end
    r"^a\$",  # a literal dollar: open at the end
    r'^"a"?$',
    r"^[^a]+$",
    r"^[^\d]$",
    r"^[]a]+$",
    r"^[a\]]$",
    r"^[\x41-\x5A]+$",
    r"^\u00e9$",
    r"^a$|^1$",
    r"^(?:a1)+$|9",
    r"^(a|Z)(1|9)?$",
    r"^.$",
    r"^.{2,3}$",
    r"^[\s\w]{2}$",
    r"^\t$",
    r"^[\n a]+$",
    r"^[ -~]+$",  # a range across the quote and the backslash
    r"^a}$",  # braces that are no quantifier are themselves
    r"^\$\{[A-Z_]+}$",
    r"^{a",
    r"^(a|1){2}$",
]


def json_text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_the_rewritten_pattern_takes_exactly_what_the_pattern_takes_of_json_safe_text(
    pattern: str,
) -> None:
    rewritten = re.compile(json_text_pattern(pattern))
    original = re.compile(pattern, re.ASCII)  # JSON Schema's \d, \w and \s are ASCII's
    for value in VALUES:
        text = json_text(value)
        if rewritten.fullmatch(text):
            assert original.search(value), (value, text)
        safe = not re.search(r'["\\\x00-\x1F]', value)  # a value the grammar writes as is
        if safe and original.search(value):
            assert rewritten.fullmatch(text), (value, text)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_no_rewritten_pattern_takes_text_that_is_not_json(pattern: str) -> None:
    rewritten = re.compile(json_text_pattern(pattern))
    for bad in ['"', "\\", "a\nb", 'a"', "\\q", "\x01"]:
        assert not rewritten.fullmatch(bad), bad


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        (r"^(a)\1$", "backreference"),
        (r"(?=a)b", "lookaround"),
        (r"\bword", "word boundary"),
        (r"^\p{L}$", "Unicode property"),
        (r"^[\D]$", r"\D inside"),
        (r"^[a", "never closed"),
        ("a\\", "lone backslash"),
        (r"^a^b$", "'^' inside"),
        (r"^[z-a]$", "range"),
        (r'^["\\]$', "only characters a JSON string escapes"),
        (r"^a{1,2000}$", "repeats more than decoding holds"),
        (r"^(a$", "never closed"),
        (r"*a", "nothing before it to repeat"),
        (r"^(+a)$", "nothing before it to repeat"),
        (r"^a)$", "closes no group"),
        (r"^a{2,1}$", "least is above its most"),
        (r"^\ud800$", "lone surrogate"),
    ],
)
def test_what_decoding_cannot_hold_is_refused_by_name(pattern: str, says: str) -> None:
    with pytest.raises(PatternError, match=re.escape(says)):
        json_text_pattern(pattern)


def test_patterns_are_rewritten_wherever_the_schema_has_them_and_only_there() -> None:
    schema = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "pattern": "^a$"},  # a property named "pattern"
            "default": {"type": "string", "pattern": "^b$"},  # ... and one named "default"
            "b": {"const": {"pattern": "^kept$"}, "default": {"pattern": "^kept$"}},
        },
        "items": [{"pattern": "^1$"}],
    }
    safe = json_safe_patterns(schema)
    assert safe["properties"]["pattern"]["pattern"] == json_text_pattern("^a$")
    assert safe["properties"]["default"]["pattern"] == json_text_pattern("^b$")
    assert safe["properties"]["b"] == schema["properties"]["b"]  # values, not schemas
    assert safe["items"][0]["pattern"] == json_text_pattern("^1$")


def test_a_length_no_grammar_holds_is_refused_by_name() -> None:
    """(llama.cpp's parser refuses such a grammar, or overflows its stack on it.)"""
    with pytest.raises(PatternError, match="maxLength 20000 is more than decoding holds"):
        json_safe_patterns({"type": "string", "maxLength": 20000})
    assert json_safe_patterns({"type": "array", "maxItems": 1000})  # as many as it holds
    with pytest.raises(PatternError, match="minLength 5 is above maxLength 2"):
        json_safe_patterns({"type": "string", "minLength": 5, "maxLength": 2})


@pytest.mark.parametrize(
    "schema",
    [{"enum": ["a\x00b"]}, {"properties": {"k": {"const": "\x00"}}},
     {"properties": {"a\x00": {"type": "string"}}}, {"default": {"x": ["\x00"]}}],
)  # fmt: skip
def test_a_nul_anywhere_in_a_schema_is_refused(schema: dict) -> None:
    """llama.cpp's grammar takes a NUL for its end: the neuron aborted on the first token."""
    with pytest.raises(PatternError, match="holds a NUL character"):
        json_safe_patterns(schema)


def test_a_refusal_names_the_pattern() -> None:
    with pytest.raises(PatternError, match=r"the pattern '\^\(a\)\\\\1\$' uses a backreference"):
        json_safe_patterns({"pattern": r"^(a)\1$"})
