"""The benchmark harness's own pieces: the catalogue it writes is one cortex accepts, and
its summaries compute what they claim."""

from __future__ import annotations

from pathlib import Path

from bench import overhead
from bench.stack import write_models
from cortex_core.config import load_catalogue


def test_the_overhead_catalogue_loads_as_scripted_models(tmp_path: Path) -> None:
    path = write_models(tmp_path / "models.toml", overhead.profiles(), {"fast": "unpaced"})
    catalogue = load_catalogue(path)
    paced, unpaced = catalogue.models
    assert paced.script is not None and paced.script.tokens_per_s == overhead.RATE
    assert unpaced.script is not None and unpaced.script.tokens_per_s == 0
    assert paced.parallel == 64 and catalogue.aliases == {"fast": "unpaced"}


def test_latency_summary_reports_stack_minus_direct() -> None:
    # (ttft_s, per_token_s, tokens) per stream, one list per round
    direct = [[(0.010, 0.010, 64), (0.012, 0.010, 64)]]
    stack = [[(0.013, 0.011, 64), (0.016, 0.011, 64)]]
    summary = overhead.latency_summary(direct, stack, streams=2)
    assert summary["direct_ttft_p50_ms"] == 10.0 and summary["stack_ttft_p50_ms"] == 13.0
    assert summary["added_ttft_p50_ms"] == 3.0
    assert summary["added_ttft_p99_ms"] == 4.0
    assert summary["added_per_token_ms"] == 1.0


def test_percentile_picks_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert overhead.percentile(values, 0.5) == 51.0
    assert overhead.percentile(values, 0.99) == 99.0
    assert overhead.percentile([7.0], 0.99) == 7.0
