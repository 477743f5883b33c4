"""`python -m bench [placement] [real_model]`: run scenarios, print results with ratios
against their baselines, and write them to bench-results/<timestamp>.json."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> int:
    chosen = argv or ["placement", "real_model"]
    results: list[dict[str, Any]] = []
    for name in chosen:
        if name == "overhead":
            from bench import overhead

            results.extend(overhead.run())
        elif name == "placement":
            from bench import placement

            results.append(placement.run())
        elif name == "real_model":
            from bench import real_model

            results.extend(real_model.run())
        else:
            print(f"unknown scenario {name!r}; choose from placement, real_model", file=sys.stderr)
            return 2
    for result in results:
        print(json.dumps(result))
    folder = Path("bench-results")
    folder.mkdir(exist_ok=True)
    target = folder / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
