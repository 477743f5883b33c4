"""The live fleet page in a real browser (Debian's headless Chromium) against the stack."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx

from tests.support.stack import RunningStack

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def rendered_dom(url: str, profile: Path) -> str:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium package is needed (.ci/run installs it)"
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
         "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def cell_texts(dom: str, table: str) -> list[list[str]]:
    body = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', dom, re.S)
    assert body, f"no {table} table in the page"
    rows = re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", r, re.S)]
        for r in rows
    ]


def test_dashboard_shows_neurons_models_and_requests(stack: RunningStack, tmp_path: Path) -> None:
    for _ in range(3):
        reply = httpx.post(
            f"{stack.base_url}/v1/chat/completions",
            json={"model": "tiny-hello", "messages": [{"role": "user", "content": "hi"}]},
            timeout=60,
        )
        assert reply.status_code == 200
    data = httpx.get(f"{stack.base_url}/dashboard/data").json()
    assert data["requests"]["total"] >= 3

    dom = rendered_dom(f"{stack.base_url}/dashboard", tmp_path / "profile")
    neurons = cell_texts(dom, "neurons")
    assert any(cells[0] == "test-neuron" and "MiB" in cells[2] for cells in neurons)
    models = cell_texts(dom, "models")
    assert ["tiny-hello", "test-neuron", "ready"] in [cells[:3] for cells in models]
    total = re.search(r'<b id="req-total">(\d+)</b>', dom)
    assert total and int(total.group(1)) >= 3
    assert re.search(r'<b id="req-ttft">\d+ ms</b>', dom)
    assert "<polyline" in dom and re.search(r"\d+ neuron\(s\) · updated", dom)
