"""The outcome table is complete: every error code raised anywhere in the services is in
it, and it says what each looks like to a client and whether another node may serve it."""

import re
from pathlib import Path

from cortex_gateway.errors import ApiError
from cortex_wire.messages import WireError
from cortex_wire.outcomes import OUTCOMES, Code, outcome

ROOT = Path(__file__).resolve().parents[2]
# Where a code is written: code="…", ApiError.of("…", EngineError("…", WireError("…",
# _unavailable(…, "…").
RAISED = re.compile(
    r'(?:code\s*=\s*|\.of\(\s*|EngineError\(\s*|WireError\(\s*|_failed\(\s*)(?:Code\.(\w+)|"([a-z_]+)")',
    re.S,
)
QUOTED = re.compile(r'(?:code\s*=\s*|\.of\(\s*|EngineError\(\s*|_failed\(\s*)"[a-z_]+"', re.S)


SOURCES = "\n".join(
    path.read_text()
    for folder in ("services", "libs", "cli")
    for path in (ROOT / folder).rglob("*.py")
)


def codes_in_sources() -> set[str]:
    return {member.lower() or quoted for member, quoted in RAISED.findall(SOURCES)}


def test_every_code_has_a_row() -> None:
    assert set(Code) == set(OUTCOMES)


def test_every_code_raised_is_in_the_table() -> None:
    found = codes_in_sources()
    assert len(found) > 20  # the scan sees the sources
    assert found - {code.value for code in OUTCOMES} == set()


def test_codes_are_raised_as_members_of_the_table_not_as_strings() -> None:
    # A code written as a bare string escapes the type check that keeps the table whole.
    assert QUOTED.findall(SOURCES) == []


def test_an_unknown_code_is_an_internal_error_never_retried() -> None:
    error = ApiError.from_wire(WireError(code="from_a_newer_peer", message="?"))
    assert (error.status, error.type, error.retry_elsewhere) == (500, "server_error", False)
    assert error.anthropic_body()["error"]["type"] == "api_error"


def test_node_failures_are_retried_elsewhere_and_request_failures_are_not() -> None:
    retried = {code for code, row in OUTCOMES.items() if row.retry_elsewhere}
    assert {"neuron_unavailable", "stream_timeout", "stream_gap", "unloading"} <= retried
    for code in ("invalid_request", "context_length_exceeded", "overloaded", "model_not_found"):
        assert not outcome(code).retry_elsewhere, code
    busy = ApiError.of("overloaded", "full")
    assert (busy.status, busy.headers(), busy.anthropic_body()["error"]["type"]) == (
        429, {"Retry-After": "1"}, "rate_limit_error"
    )  # fmt: skip
