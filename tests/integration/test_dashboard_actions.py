"""An operator at the dashboard, in a real browser (Debian's Chromium driven by
Playwright): loads, pins, unpins and unloads a model by clicking, with the admin key typed
into the page; tries a model in the playground (reasoning shown apart from the answer); and
sees the requests in the live log and each model's charts."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.support.stack import RunningStack, running_gateway, stack_on_own_bus
from tests.support.tiny_gguf import build_tiny_gguf

ADMIN_KEY = "dashboard-admin-key"
API_KEY = "dashboard-api-key"
# Waits for the page (its own refresh every 2 s), far above what it needs.
DEADLINE_MS = 30_000


@pytest.fixture(scope="module")
def operated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    folder = tmp_path_factory.mktemp("dashboard")
    hello = build_tiny_gguf(folder / "hello.gguf", ("Hello", "!"))
    think = build_tiny_gguf(
        folder / "think.gguf", ("<think>", "Let", " me", " think", "</think>", "Hello", "!")
    )
    models = [
        {"id": "hello", "path": str(hello.path), "n_ctx": 256},
        {"id": "think", "path": str(think.path), "n_ctx": 256},
    ]
    # Auth on: the page opens without a key, shows nothing until one is typed into it.
    gateway = {"require_auth": True, "api_keys": [API_KEY], "admin_keys": [ADMIN_KEY]}
    with stack_on_own_bus(folder, models, node="ops-neuron", gateway=gateway) as stack:
        yield stack


@pytest.fixture
def page(operated: RunningStack) -> Iterator[Page]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium package is needed (.ci/run installs it)"
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            tab = browser.new_page()
            tab.set_default_timeout(DEADLINE_MS)
            tab.goto(f"{operated.base_url}/dashboard")
            yield tab
        finally:
            browser.close()


def act(page: Page, model: str, operation: str) -> None:
    page.locator(f'#catalogue tr[data-model="{model}"] button[data-op="{operation}"]').click()


def pins(stack: RunningStack) -> list[str]:
    status = httpx.get(
        f"{stack.base_url}/admin/status", headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    )  # fmt: skip
    status.raise_for_status()
    return [pin["model"] for pin in status.json()["pins"]]


def test_an_operator_loads_pins_unpins_and_unloads_by_clicking(
    page: Page, operated: RunningStack
) -> None:
    row = page.locator('#catalogue tr[data-model="hello"]')
    status = page.locator("#action-status")
    expect(page.locator("#status")).to_contain_text("HTTP 401")  # no key yet: no data
    page.fill("#key", API_KEY)
    expect(row).to_contain_text("not loaded")
    act(page, "hello", "load")  # an API key is not an admin key: refused, saying why
    expect(status).to_contain_text("load hello failed")
    expect(status).to_contain_text("admin")
    page.fill("#key", ADMIN_KEY)
    act(page, "hello", "load")
    expect(status).to_contain_text("load hello: ok on ops-neuron")
    expect(row).to_contain_text("ready on ops-neuron")
    act(page, "hello", "pin")
    expect(status).to_contain_text("pin hello: ok")
    assert pins(operated) == ["hello"]
    act(page, "hello", "unpin")
    expect(status).to_contain_text("unpin hello: ok")
    assert pins(operated) == []
    act(page, "hello", "unload")
    expect(status).to_contain_text("unload hello: ok")
    expect(row).to_contain_text("not loaded")


def test_the_playground_streams_reasoning_apart_and_the_log_shows_it(page: Page) -> None:
    page.fill("#key", API_KEY)
    page.select_option("#play-model", "think")
    page.fill("#play-input", "Hi")
    page.click("#play-send")
    expect(page.locator("#play-status")).to_contain_text("done (stop)")
    expect(page.locator("#play-answer")).to_have_text("Hello!")
    expect(page.locator("#play-reasoning")).to_have_text("Let me think")
    latest = page.locator("#log tbody tr").first
    expect(latest).to_contain_text("think")
    expect(latest).to_contain_text("ops-neuron")
    expect(latest).to_contain_text("ok")
    expect(page.locator('#per-model tr[data-model="think"] svg polyline').first).to_be_attached()


def test_the_log_shows_what_another_gateway_replica_served(
    page: Page, operated: RunningStack
) -> None:
    page.fill("#key", API_KEY)
    with running_gateway(operated.settings) as other:
        reply = httpx.post(
            f"{other}/v1/completions", json={"model": "hello", "prompt": "Hi\n"},
            headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60,
        )  # fmt: skip
        assert reply.status_code == 200, reply.text
    expect(page.locator("#log tbody tr").first).to_contain_text("completions")
