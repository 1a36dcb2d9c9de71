"""JSON Schemas generated from the models, committed under ``schemas/`` for editors and for the
CI of a user's policy repository. ``atlas-autonomous schemas --check`` fails when stale."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autonomous.resources.base import API_VERSION, kinds
from autonomous.resources.loader import policy_model, settings_model

__all__ = ["generate", "stale", "write"]


def _envelope(kind: str, spec_schema: dict[str, Any]) -> dict[str, Any]:
    defs = spec_schema.pop("$defs", {})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://atlas.autonomous/schemas/{kind}.json",
        "title": kind,
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"const": kind},
            "metadata": {
                "type": "object", "additionalProperties": False, "required": ["name"],
                "properties": {
                    "name": {"type": "string",
                             "pattern": "^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"type": "object",
                                    "additionalProperties": {"type": "string"}},
                },
            },
            "spec": spec_schema,
        },
        "$defs": defs,
    }


def generate() -> dict[str, dict[str, Any]]:
    """File name → schema, for every kind plus the effective policy and config settings."""
    out: dict[str, dict[str, Any]] = {}
    for kind, model in sorted(kinds().items()):
        out[f"{kind}.json"] = _envelope(kind, model.model_json_schema())
    pol = policy_model().model_json_schema()
    pol["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    pol["title"] = "EffectivePolicy"
    out["EffectivePolicy.json"] = pol
    st = settings_model().model_json_schema()
    st["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    st["title"] = "OperatorSettings"
    out["OperatorSettings.json"] = st
    return out


def _dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(dest: Path) -> list[str]:
    dest.mkdir(parents=True, exist_ok=True)
    files = generate()
    for old in dest.glob("*.json"):
        if old.name not in files:
            old.unlink()
    for name, schema in files.items():
        (dest / name).write_text(_dump(schema))
    return sorted(files)


def stale(dest: Path) -> list[str]:
    """Names of schema files that are missing, different or extra."""
    files = generate()
    bad = [n for n, s in files.items()
           if not (dest / n).exists() or (dest / n).read_text() != _dump(s)]
    bad += [p.name for p in dest.glob("*.json") if p.name not in files]
    return sorted(bad)
