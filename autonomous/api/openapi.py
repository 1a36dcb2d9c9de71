"""The OpenAPI document as the API really answers: errors are ``{"detail": str, ...}`` (422
adds ``problems``), 401 on routes that need the token (declared as a bearer security scheme),
404/409/429 documented, and the 422 schema FastAPI generates replaced by ours."""

from __future__ import annotations

from typing import Any

from autonomous.api.deps import require_token

__all__ = ["install"]

_ERROR = {"type": "object", "required": ["detail"], "properties": {
    "detail": {"type": "string", "description": "What went wrong, for a human"},
    "error": {"type": "string", "description": "Error class"}}}
_INVALID = {"type": "object", "required": ["detail", "problems"], "properties": {
    "detail": {"type": "string"},
    "problems": {"type": "array", "items": {"type": "object", "properties": {
        "path": {"type": "string"}, "message": {"type": "string"},
        "file": {"type": "string"}, "line": {"type": "integer"}}}}}}
_THROTTLED = {"type": "object", "required": ["detail"], "properties": {
    "detail": {"type": "string"}, "error": {"type": "string"},
    "retry_after_seconds": {"type": "number"}}}


def _resp(text: str, ref: str) -> dict[str, Any]:
    return {"description": text,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _needs_token(route: Any) -> bool:
    from autonomous.api.body_guard import _uses

    dependant = getattr(route, "dependant", None)
    return dependant is not None and _uses(dependant, require_token)


def build(app: Any) -> dict[str, Any]:
    from fastapi.openapi.utils import get_openapi

    from autonomous.api.body_guard import _leaves

    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.update({"Error": _ERROR, "InvalidRequest": _INVALID, "Throttled": _THROTTLED})
    doc["components"]["securitySchemes"] = {"bearer": {
        "type": "http", "scheme": "bearer",
        "description": "ATLAS_AUTONOMOUS_TOKEN or <data-dir>/api-token"}}
    secured = {(r.path, m.lower()) for r in _leaves(app.routes) if _needs_token(r)
               for m in getattr(r, "methods", ())}
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            responses = op.setdefault("responses", {})
            responses["422"] = _resp("Invalid request: every problem, with its path",
                                     "InvalidRequest")
            responses.setdefault("404", _resp("Not found (unknown id or name)", "Error"))
            responses.setdefault("409", _resp("Conflict with the current state", "Error"))
            responses.setdefault("429", _resp("Shed by admission control; see Retry-After",
                                              "Throttled"))
            if (path, method) in secured:
                op["security"] = [{"bearer": []}]
                responses.setdefault("401", _resp("Missing or invalid bearer token", "Error"))
    return doc


def install(app: Any) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi
