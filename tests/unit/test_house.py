"""The house picture: libraries (`libs/`) never import a service; services never import
the CLI. Arrows only point down: cli → services → libs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMPORT = re.compile(r"^\s*(?:from|import)\s+(cortex_\w+)", re.M)
SERVICES = {"cortex_gateway", "cortex_neuron", "cortex_scheduler"}


def imported(folder: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / folder).rglob("*.py"):
        for name in IMPORT.findall(path.read_text()):
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_libraries_import_no_service_and_no_cli() -> None:
    found = imported("libs")
    assert "cortex_wire" in found  # the scan sees the imports
    assert {n: f for n, f in found.items() if n in SERVICES or n == "cortex_cli"} == {}


def test_services_do_not_import_the_cli() -> None:
    assert "cortex_cli" not in imported("services")
