"""JSON Schema patterns as llama.cpp's grammar converter takes them (pure)."""

import pytest

from cortex_neuron.llama_backend import anchored_patterns

ANY = r'[^"\\\x00-\x1F]*'


@pytest.mark.parametrize(
    ("pattern", "converted"),
    [
        (r"\d{4}", f"^{ANY}([0-9]{{4}}){ANY}$"),  # matches anywhere: open at both ends
        (r"^ab", f"^(ab){ANY}$"),
        (r"ab$", f"^{ANY}(ab)$"),
        (r"^\w+\s\d$", r"^([A-Za-z0-9_]+[ \t\n\r\f\v][0-9])$"),
        (r"^[\d.-]+$", r"^([0-9.-]+)$"),  # within brackets, the class's members
        (r"^\D\S$", r"^([^0-9][^ \t\n\r\f\v])$"),
        (r"^\$\\d$", r"^(\$\\d)$"),  # escaped characters stay as they are
    ],
)
def test_patterns_are_anchored_and_their_shorthands_spelled(pattern: str, converted: str) -> None:
    schema = {"type": "object", "properties": {"p": {"type": "string", "pattern": pattern}}}
    assert anchored_patterns(schema)["properties"]["p"]["pattern"] == converted


def test_a_property_named_pattern_is_not_a_pattern() -> None:
    schema = {"properties": {"pattern": {"type": "string"}}}
    assert anchored_patterns(schema) == schema
