"""The demo catalogue: demo.toml, with the GGUF located inside its wheel without importing
that wheel's package (importing it would drag in its host application)."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from cortex_core.config import ConfigError

DEMO_SPEC = Path(__file__).with_name("demo.toml")


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def locate_demo_gguf(distribution: str, filename: str) -> Path:
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            f"the demo model needs the {distribution!r} package; install it or pass --models"
        ) from None
    for file in dist.files or []:
        if file.name == filename:
            return Path(str(dist.locate_file(file))).resolve()
    raise ConfigError(f"package {distribution!r} does not contain {filename}")


def write_demo_catalogue(state_dir: Path) -> Path:
    """Write the demo models.toml into the state directory and return its path."""
    spec = tomllib.loads(DEMO_SPEC.read_text())
    gguf = locate_demo_gguf(spec["source"]["distribution"], spec["source"]["file"])
    lines = ["# Written by `cortex up` (no --models given): the bundled demo model.", ""]
    for model in spec["models"]:
        lines.append("[[models]]")
        lines.append(f"id = {_toml_string(model['id'])}")
        lines.append(f"path = {_toml_string(str(gguf))}")
        lines.extend(f"{key} = {value}" for key, value in model.items() if key != "id")
        lines.append("")
    lines.append("[aliases]")
    lines.extend(f"{_toml_string(a)} = {_toml_string(t)}" for a, t in spec["aliases"].items())
    state_dir.mkdir(parents=True, exist_ok=True)
    target = state_dir / "demo-models.toml"
    target.write_text("\n".join(lines) + "\n")
    return target
