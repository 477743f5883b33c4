"""cortex benchmarks: each scenario measures cortex and its baseline in the same run."""
