"""The deployment files are checked by the tools that will read them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "deploy" / "systemd").glob("cortex-*.service"))


def test_one_unit_per_service() -> None:
    names = [u.stem for u in UNITS]
    assert names == ["cortex-gateway", "cortex-nats", "cortex-neuron", "cortex-scheduler"]


def _verify(folder: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed (Debian package systemd)"
    return subprocess.run([analyze, "verify", *map(str, sorted(folder.iterdir()))],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    # The units name /opt/cortex/bin/cortex; verify insists the binary exists, so point
    # copies at this environment's cortex (nothing else in the units changes).
    cortex = Path(sys.executable).with_name("cortex")
    for unit in UNITS:
        text = unit.read_text()
        assert "ExecStart=/opt/cortex/bin/cortex " in text and "User=cortex" in text
        assert "Restart=on-failure" in text and "/etc/cortex/cortex.toml" in text
        (tmp_path / unit.name).write_text(text.replace("/opt/cortex/bin/cortex", str(cortex)))
    result = _verify(tmp_path)
    assert result.returncode == 0, result.stderr


def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    broken = UNITS[0].read_text().replace("Type=simple", "Type=sometimes")
    (tmp_path / "cortex-broken.service").write_text(
        broken.replace("/opt/cortex/bin/cortex", "/bin/true")
    )
    result = _verify(tmp_path)
    assert "sometimes" in result.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_each_unit_runs_its_own_service(unit: Path) -> None:
    service = unit.stem.removeprefix("cortex-")
    assert f"cortex {service} --config" in unit.read_text()


def test_compose_runs_every_service_with_health_checks() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert sorted(services) == ["gateway", "nats", "neuron", "scheduler"]
    assert all("healthcheck" in s for s in services.values())
    # The bus is cortex's own embedded nats-server, its JetStream store on a volume.
    assert services["nats"]["command"] == ["nats"]
    assert "nats-data:/var/lib/cortex" in services["nats"]["volumes"]
    for name in ("scheduler", "gateway", "neuron"):
        assert services[name]["command"] == [name]
        assert services[name]["environment"]["CORTEX_NATS_URL"] == "nats://nats:4222"
        assert services[name]["depends_on"]["nats"]["condition"] == "service_healthy"
    # Comes up anywhere: no GPU reserved, the demo catalogue the image carries.
    neuron = services["neuron"]
    assert "deploy" not in neuron and "volumes" not in neuron
    assert neuron["environment"]["CORTEX_NEURON_MODELS"] == "/etc/cortex/demo-models.toml"


def test_the_gpu_variant_adds_cuda_devices_and_models() -> None:
    gpu = yaml.safe_load((ROOT / "compose.gpu.yaml").read_text())["services"]["neuron"]
    (devices,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices["driver"] == "nvidia" and "gpu" in devices["capabilities"]
    assert gpu["build"]["args"]["CMAKE_ARGS"] == "-DGGML_CUDA=on"
    assert gpu["build"]["args"]["BASE"].startswith("nvidia/cuda:")
    assert "-runtime-" in gpu["build"]["args"]["RUNTIME_BASE"]  # no compilers in the image
    assert any(v.endswith(":/models:ro") for v in gpu["volumes"])
    assert gpu["environment"]["CORTEX_NEURON_MODELS"] == "/models/models.toml"


def test_the_image_runs_as_a_user_and_keeps_build_inputs_out() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    final = dockerfile.rsplit("\nFROM ", 1)[1]  # the image's own stage
    assert "USER cortex" in final and "/inputs" not in final
