"""`python -m bench [overhead] [real_model] [concurrency] [placement] [shared] [versus]
[routing] [kv] [attention]`: run scenarios (all by default), print each result with its
ratio against the baseline measured in the same run, and write them, with the machine they
ran on, to bench-results/<timestamp>.json."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib import import_module, metadata
from pathlib import Path
from typing import Any

SCENARIOS = (
    "overhead",
    "real_model",
    "concurrency",
    "placement",
    "shared",
    "versus",
    "routing",
    "kv",
    "attention",
)


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    ) if Path("/proc/cpuinfo").exists() else platform.processor()  # fmt: skip
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "llama_cpp_python": metadata.version("llama-cpp-python"),
    }


def main(argv: list[str]) -> int:
    chosen = argv or list(SCENARIOS)
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        print(
            f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}", file=sys.stderr
        )
        return 2
    results: list[dict[str, Any]] = []
    for name in chosen:
        scenario_run: Callable[[], Any] = import_module(f"bench.{name}").run
        outcome = scenario_run()
        for result in outcome if isinstance(outcome, list) else [outcome]:
            print(json.dumps(result), flush=True)
            results.append(result)
    folder = Path("bench-results")
    folder.mkdir(exist_ok=True)
    target = folder / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.write_text(json.dumps({"machine": machine(), "results": results}, indent=2) + "\n")
    print(f"written to {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
