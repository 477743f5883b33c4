from bench import placement


def test_placement_benchmark_reports_its_ratio_to_target() -> None:
    result = placement.run(rounds=20)
    assert result["decisions"] == 20 and result["neurons"] == 200 and result["models"] == 50
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert abs(result["p99_vs_target"] - result["p99_ms"] / placement.TARGET_P99_MS) < 0.002


def test_the_simulated_fleet_is_deterministic() -> None:
    first, second = placement.fleet(), placement.fleet()
    assert first == second and len(first) == 200
