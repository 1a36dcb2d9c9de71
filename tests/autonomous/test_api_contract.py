"""schemathesis, with all its checks, against a real operator's /openapi.json, with and
without the bearer token: every documented operation answers as documented (status codes,
content types, response schemas, auth) and never 500s. Bounded and derandomized."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import TOKEN, OperatorProcess, _recorded_pids, free_port, make_tree, service_yaml

# One operation left out: PUT /api/governance/mode. A generated 'emergency_stop' stops every
# non-core service and changes the governance gate every later case runs under (growth lets
# generated actions run at once), so the cases would depend on their order. It has its own
# tests (test_api.py, test_api_openapi.py). Restores and drills are exercised: with generated
# backup ids they are 404s, and a restore target is confined to the data dir (item 1).
SKIPPED = {"method": "PUT", "path": "/api/governance/mode"}

# One check left out on one operation: GET /api/telemetry/metrics answers 422 when step cuts
# [start, end] into more than MAX_WINDOWS windows (Prometheus answers 400 to the same), a limit
# across two parameters that OpenAPI cannot state, so schemathesis counts it as a valid request
# rejected. Every other check still runs there; the 422 has its own test (test_telemetry_api).
_CROSS_PARAMETER = {("GET", "/api/telemetry/metrics")}


def _excluded(case: schemathesis.Case) -> list:
    key = (case.operation.method.upper(), case.operation.path)
    return [positive_data_acceptance] if key in _CROSS_PARAMETER else []


@pytest.fixture(scope="module")
def operator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    base = tmp_path_factory.mktemp("contract")
    root = make_tree(base / "tree", {"echo": service_yaml("echo", free_port())})
    op = OperatorProcess(root, base / "data", free_port()).start(wait=60)
    with op.client() as c:  # a 503 before the health monitor's first cycle is documented,
        # but schemathesis counts every 5xx as a server error: start once it is ready
        op.wait_for(lambda: c.get("/api/health/comprehensive").status_code == 200,
                    timeout=60, what="the health monitor's first cycle")
    yield op
    op.stop()
    for pid in _recorded_pids(op.data_dir):  # no child may outlive the module
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def api_schema(operator: OperatorProcess) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(operator.url + "/openapi.json")
    return schema.exclude(**SKIPPED)


schema = schemathesis.pytest.from_fixture("api_schema")


# Above the operator's intents.request_wait_seconds (10 s): a survival enter/exit the
# resilience controller has not settled by then is a documented 202, not a client timeout.
CLIENT_TIMEOUT_S = 20

SETTINGS = settings(max_examples=25, derandomize=True, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


@pytest.mark.timeout(300)
@schema.parametrize()
@SETTINGS
def test_contract_with_token(case: schemathesis.Case, operator: OperatorProcess) -> None:
    case.call_and_validate(base_url=operator.url, timeout=CLIENT_TIMEOUT_S,
                           excluded_checks=_excluded(case), headers={"Authorization": f"Bearer {TOKEN}"})


@pytest.mark.timeout(300)
@schema.parametrize()
@SETTINGS
def test_contract_without_token(case: schemathesis.Case, operator: OperatorProcess) -> None:
    case.call_and_validate(base_url=operator.url, timeout=CLIENT_TIMEOUT_S,
                           excluded_checks=_excluded(case))
