"""The OpenAPI document matches what the API answers: 422 as detail + problems, 401 and a
bearer scheme on routes needing the token, 404/409/429 documented, enums, content types."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from autonomous.api.app import create_app
from autonomous.testing import make_context


@pytest.fixture()
def spec_and_client(tmp_path):
    ctx = make_context(tmp_path)
    with TestClient(create_app(ctx)) as c:
        yield c.get("/openapi.json").json(), c
    ctx.store.close()


def test_422_documented_as_really_shaped(spec_and_client):
    spec, c = spec_and_client
    assert "HTTPValidationError" not in str(spec)
    put = spec["paths"]["/api/governance/mode"]["put"]
    ref = put["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["properties"]["detail"]["type"] == "string"
    assert schema["properties"]["problems"]["type"] == "array"
    r = c.put("/api/governance/mode", json={}, headers={"Authorization": "Bearer test-token"})
    assert r.status_code == 422 and isinstance(r.json()["detail"], str) and r.json()["problems"]


def test_security_scheme_and_error_codes_documented(spec_and_client):
    spec, _ = spec_and_client
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    put = spec["paths"]["/api/governance/mode"]["put"]
    assert put["security"] == [{"bearer": []}]
    assert {"401", "404", "409", "422", "429"} <= set(put["responses"])
    get = spec["paths"]["/api/governance/mode"]["get"]
    assert "security" not in get and "401" not in get["responses"]


def test_mode_is_an_enum_and_export_content_type_documented(spec_and_client):
    spec, _ = spec_and_client
    body = spec["components"]["schemas"]["ModeBody"]["properties"]["mode"]
    assert body.get("enum") == ["governed", "growth", "emergency_stop"] or \
        spec["components"]["schemas"]["ModeName"]["enum"]
    param = next(p for p in spec["paths"]["/api/policy"]["get"]["parameters"]
                 if p["name"] == "mode")
    assert "governed" in str(param["schema"])
    export = spec["paths"]["/api/telemetry/logs/export"]["get"]["responses"]["200"]
    assert "application/x-ndjson" in export["content"]
