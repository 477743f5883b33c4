"""The real chat templates the tests carry (tests/fixtures/chat_templates)."""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates"


def all_templates() -> list[Path]:
    return sorted(FOLDER.glob("*.jinja"))


def template(name: str) -> str:
    return (FOLDER / name).read_text()
