"""Tool calls in generated text (pure).

Models write a call between their tool-call markers as JSON — `{"name": ..., "arguments":
{...}}` (arguments may also come as a JSON string, or under "parameters"). A block that does
not parse as such stays text, markers and all, so nothing the model wrote is lost.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ParsedCall:
    id: str
    name: str
    arguments: str  # JSON text of an object

    @property
    def input(self) -> dict[str, Any]:
        """The arguments as an object ({} if they are not one: a call cut off mid-way)."""
        try:
            value = json.loads(self.arguments)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


def new_call_id(prefix: str = "call_") -> str:
    return prefix + uuid.uuid4().hex[:24]


def parse_tool_block(text: str, prefix: str = "call_") -> ParsedCall | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"]:
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ParsedCall(new_call_id(prefix), value["name"], json.dumps(arguments, ensure_ascii=False))


def block_as_text(text: str, markers: list[str], complete: bool) -> str:
    """An unparseable block, written back as the model wrote it."""
    if len(markers) != 2:
        return text
    return markers[0] + text + (markers[1] if complete else "")
