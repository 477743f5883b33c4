"""The Grafana dashboard only queries metrics that cortex actually exports."""

import json
import re
from pathlib import Path

from cortex_core.fleet import FleetState
from cortex_gateway.metrics import GatewayMetrics
from cortex_neuron.metrics import NeuronMetrics
from cortex_scheduler.metrics import SchedulerMetrics

ROOT = Path(__file__).resolve().parents[2]
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def exported_names() -> set[str]:
    gateway = GatewayMetrics()
    gateway.watch_fleet(FleetState())
    names = set()
    for registry in (gateway.registry, NeuronMetrics().registry, SchedulerMetrics().registry):
        for family in registry.collect():
            names.add(family.name)
            names.update(family.name + suffix for suffix in SUFFIXES)
    return names


def test_every_panel_queries_exported_metrics() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "cortex-dashboard.json").read_text())
    exported = exported_names()
    queried = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            queried.update(re.findall(r"\bcortex_[a-z_]+", target["expr"]))
    assert queried, "the dashboard queries nothing"
    assert queried <= exported, sorted(queried - exported)
    assert len(dashboard["panels"]) >= 8
