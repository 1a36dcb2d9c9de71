"""Out-of-range numbers on every numeric parameter are a 4xx naming the parameter, never a
500 (OverflowError, SQLite integer overflow)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from autonomous.api.app import create_app
from autonomous.testing import make_context

AUTH = {"Authorization": "Bearer test-token"}
HUGE = "99999999999999999999999"


@pytest.fixture()
def client(tmp_path):
    ctx = make_context(tmp_path)
    with TestClient(create_app(ctx)) as c:
        yield c
    ctx.store.close()


@pytest.mark.parametrize("method,url,name", [
    ("GET", "/api/health/anomalies?since=-6.4e16", "since"),
    ("GET", "/api/health/anomalies?since=1e400", "since"),
    ("GET", "/api/telemetry/metrics?name=x&start=-1e49", "start"),
    ("GET", "/api/telemetry/metrics?name=x&end=1e49", "end"),
    ("GET", "/api/telemetry/dashboard/overview?start=-1e49", "start"),
    ("GET", "/api/telemetry/logs?since=-1e49", "since"),
    ("GET", "/api/telemetry/alerts?since=1e300", "since"),
    ("GET", f"/api/telemetry/alerts/{HUGE}", "alert_id"),
    ("POST", f"/api/telemetry/alerts/ack/{HUGE}", "alert_id"),
    ("POST", f"/api/telemetry/alerts/resolve/{HUGE}", "alert_id"),
    ("DELETE", f"/api/telemetry/silences/{HUGE}", "silence_id"),
    ("GET", "/api/healing/history?since=-1e49", "since"),
    ("GET", "/api/graph/nodes?since=-6.4e16", "since"),
])
def test_out_of_range_numbers_are_422_naming_the_parameter(client, method, url, name):
    r = client.request(method, url, headers=AUTH)
    assert r.status_code == 422, (url, r.status_code, r.text)
    assert name in r.json()["detail"]
