"""The effective policy per governance mode: every base PolicySet merged (a leaf defined in two
bases is a problem), then each mode's overlays on top, validated against the policy model.

Where a value came from is tracked (document and path), so a problem in the effective policy
points at the file and line that set the value, with "(effective policy for mode …)" only when
it concerns some modes and not all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from autonomous.core.errors import Problem
from autonomous.resources.kinds.policyset import GOVERNANCE_MODES, PolicySetSpec
from autonomous.resources.validation_problems import problem_from
from autonomous.resources.yaml_lines import Document, line_for

__all__ = ["effective_policies"]

Report = Callable[[Document, tuple, str], None]
Origin = dict[tuple, tuple[Document, tuple]]


def effective_policies(sets: list[tuple[PolicySetSpec, Document]], model: type[BaseModel],
                       report: Report, problems: list[Problem]) -> dict[str, dict[str, Any]]:
    """``{mode: policy dict}`` from the PolicySets in file order; problems are appended to
    ``problems`` (``report(doc, path, message)`` for one at a place in a document)."""
    if not sets:
        return {}
    base: dict[str, Any] = {}
    origin: Origin = {}
    overlays: dict[str, list[tuple[dict, Document]]] = {m: [] for m in GOVERNANCE_MODES}
    for spec, doc in sets:
        if spec.mode is None:
            _merge_base(base, spec.policy, doc, origin, report)
        else:
            overlays[spec.mode].append((spec.policy, doc))
    effective: dict[str, dict[str, Any]] = {}
    per_mode: dict[Problem, list[str]] = {}
    base_doc = sets[0][1]
    for mode in GOVERNANCE_MODES:
        merged = _deep_copy(base)
        mode_origin = dict(origin)
        for policy, doc in overlays[mode]:
            _overlay(merged, policy, doc, ("spec", "policy"), mode_origin)
        try:
            effective[mode] = model.model_validate(merged).model_dump(mode="json")
        except ValidationError as exc:
            for err in exc.errors():
                doc, path = _origin_of(tuple(err["loc"]), mode_origin, base_doc)
                prob = problem_from(err, doc, (), model, override_path=path)
                per_mode.setdefault(prob, []).append(mode)
    for prob, modes in per_mode.items():
        if len(modes) < len(GOVERNANCE_MODES):
            prob = Problem(prob.file, prob.line, prob.path,
                           f"{prob.message} (effective policy for mode "
                           f"{', '.join(map(repr, modes))})")
        problems.append(prob)
    return effective


def _merge_base(base: dict, policy: dict, doc: Document, origin: Origin, report: Report) -> None:
    def walk(dst: dict, src: dict, path: tuple) -> None:
        for k, v in src.items():
            if isinstance(v, dict) and isinstance(dst.get(k), dict):
                walk(dst[k], v, path + (k,))
                continue
            if k in dst:
                first_doc, first_path = origin[path + (k,)]
                report(doc, ("spec", "policy") + path + (k,),
                       f"defined twice in base policies (first at {first_doc.file}:"
                       f"{line_for(first_doc, first_path)}); keep one")
                continue
            dst[k] = _deep_copy(v)
            _record_origin(origin, path + (k,), v, doc, ("spec", "policy") + path + (k,))
    walk(base, policy, ())


def _record_origin(origin: dict, path: tuple, value: Any, doc: Document, doc_path: tuple) -> None:
    origin[path] = (doc, doc_path)
    if isinstance(value, dict):
        for k, v in value.items():
            _record_origin(origin, path + (k,), v, doc, doc_path + (k,))


def _overlay(dst: dict, src: dict, doc: Document, doc_path: tuple, origin: dict,
             path: tuple = ()) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _overlay(dst[k], v, doc, doc_path + (k,), origin, path + (k,))
        else:
            dst[k] = _deep_copy(v)
            _record_origin(origin, path + (k,), v, doc, doc_path + (k,))


def _origin_of(loc: tuple, origin: dict, base_doc: Document) -> tuple[Document, tuple]:
    p = tuple(loc)
    while p:
        if p in origin:
            doc, doc_path = origin[p]
            return doc, doc_path + tuple(loc[len(p):])
        p = p[:-1]
    return base_doc, ("spec", "policy") + tuple(loc)


def _deep_copy(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _deep_copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_deep_copy(x) for x in v]
    return v
