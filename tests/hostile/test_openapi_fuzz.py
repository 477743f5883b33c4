"""Schemathesis against the gateway's own OpenAPI description: whatever it generates, valid
or not, the gateway answers without a 5xx, and every error is in its dialect's envelope."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.support.stack import RunningStack, stack_on_own_bus


@pytest.fixture(scope="module")
def fuzzed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    models = [{"id": "s", "n_ctx": 256, "parallel": 4, "script": {"reply": "<think>hm</think>ok"}}]
    with stack_on_own_bus(tmp_path_factory.mktemp("fuzz"), models) as running:
        yield running


def cases() -> list[tuple[str, GenerationMode]]:
    """Every operation the description lists ("METHOD path"), with valid input, and those
    that take a body with invalid input too (a GET without parameters has none)."""
    from cortex_gateway.openapi import openapi_document

    found = []
    for path, methods in openapi_document()["paths"].items():
        for method, spec in methods.items():
            found.append((f"{method.upper()} {path}", GenerationMode.POSITIVE))
            if "requestBody" in spec:
                found.append((f"{method.upper()} {path}", GenerationMode.NEGATIVE))
    return found


@pytest.mark.parametrize(("operation", "mode"), cases(), ids=lambda v: getattr(v, "value", v))
def test_no_server_errors_and_errors_in_their_dialects_envelope(
    fuzzed_stack: RunningStack, operation: str, mode: GenerationMode
) -> None:
    api = schemathesis.openapi.from_url(f"{fuzzed_stack.base_url}/openapi.json")
    method, path = operation.split(" ", 1)
    found = next(
        result.ok()
        for result in api.get_all_operations()
        if result.ok().method.upper() == method and result.ok().path == path
    )

    @given(case=found.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call(base_url=fuzzed_stack.base_url, timeout=30)
        assert response.status_code < 500, (case.path, case.body, response.text[:500])
        if response.status_code < 400:
            return
        body = response.json()
        if case.path.startswith("/api/"):
            assert isinstance(body["error"], str) and body["error"], body
        elif case.path.startswith("/v1/messages"):
            assert body["type"] == "error" and {"type", "message"} <= set(body["error"]), body
        else:
            assert {"message", "type", "param", "code"} <= set(body["error"]), body

    fuzz()
