"""schemathesis against a live Accord server: every /api/v1/ operation in the OpenAPI document, with generated
inputs, anonymously and logged in, must never answer 5xx nor break its documented schema.

The schemathesis command line is used rather than its pytest plugin, which does not load under pytest 9.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT
from tests.support.live import LiveServer, demo_server, login

SCHEMATHESIS = ROOT / ".venv" / "bin" / "schemathesis"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    with demo_server("accord-contract-") as server:
        yield server


def run_schemathesis(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        str(SCHEMATHESIS), "run", f"{url}/api/openapi.json", "--checks", CHECKS, "--max-examples", "20",
        "--generation-deterministic", "--no-color", *extra,
    ]  # fmt: skip
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize("who", ["public", "stakeholder"])
def test_the_api_keeps_its_contract(live: LiveServer, who: str) -> None:
    extra: list[str] = []
    if who != "public":
        session = login(live.url, f"{who}@accord.example")
        cookie = "; ".join(f"{name}={value}" for name, value in session.cookies.items())
        extra = ["--header", f"Cookie: {cookie}"]
    result = run_schemathesis(live.url, *extra)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
