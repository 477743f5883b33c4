"""Service code must work for any model: no model or family name may steer its logic.

Model names belong in tests, docs and example catalogues only; behaviour comes from what a
model's own files say (its vocabulary, its chat template).
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = re.compile(
    r"qwen|deepseek|magistral|mistral|gpt-oss|smollm|llama-?[23]|gemma|phi-?[34]", re.I
)


def code_files() -> list[Path]:
    folders = ("services", "libs", "cli")
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_there_is_code_to_check() -> None:
    assert len(code_files()) > 20


def test_no_model_names_in_service_code() -> None:
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in code_files()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if FORBIDDEN.search(line)
    ]
    assert hits == []
