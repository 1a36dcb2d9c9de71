"""Opt-in admission control for a sample service: the resilience layer's framework-neutral core
(:class:`autonomous.resilience.admission.Admission`) around every request.

Turned on by ``--admission-policy PATH`` (or env ``ATLAS_SAMPLE_ADMISSION_POLICY``); without it
this module is never imported, so a plain sample service starts without pydantic or YAML.
``PATH`` is either

* a desired-state root (a directory holding ``policies/``): the ``resilience`` section of the
  effective policy for ``--admission-mode`` (governance mode; default ``governed``), or
* one YAML file holding a ``PolicySet`` whose ``spec.policy.resilience`` is a complete
  resilience section (``policies/resilience.yaml`` itself qualifies).

Bad policy → ``ValueError`` with ``file:line: field.path: message`` lines (the CLI exits 2).
The files are re-read when one of them changes (checked at most every
``admission.policy_refresh_seconds``); an edit that does not validate is logged and the last
good policy stays in force.

Probes and the operator's control endpoints (:data:`NEVER_SHED`) are never shed, whatever the
policy says: a shed ``/health`` would make the operator restart a service for being busy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from autonomous.resilience.admission import Admission, admission_for_policy

__all__ = ["ENV_VAR", "NEVER_SHED", "PolicyFiles", "load_resilience_policy", "make_admission"]

ENV_VAR = "ATLAS_SAMPLE_ADMISSION_POLICY"
NEVER_SHED = ("/health", "/ready", "/metrics", "/features", "/fault")

Signature = tuple[tuple[str, int, int], ...]


def _yaml_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def _signature(path: Path) -> Signature:
    out = []
    for f in _yaml_files(path):
        try:
            st = f.stat()
        except OSError:
            continue
        out.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(out)


def load_resilience_policy(path: str | Path, mode: str = "governed") -> dict[str, Any]:
    """The ``resilience`` policy section from a root directory or one PolicySet file;
    ValueError listing every problem."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: no such file or directory")
    return _from_root(p, mode) if p.is_dir() else _from_file(p)


def _from_root(root: Path, mode: str) -> dict[str, Any]:
    from autonomous.resources.kinds.policyset import GOVERNANCE_MODES
    from autonomous.resources.loader import load_tree

    if mode not in GOVERNANCE_MODES:
        raise ValueError(f"admission mode {mode!r} is not one of {', '.join(GOVERNANCE_MODES)}")
    result = load_tree(root, require_services=False)
    if result.tree is None:
        raise ValueError("\n".join(str(prob) for prob in result.problems))
    if mode not in result.tree.policies:
        raise ValueError(f"{root}: no PolicySet under policies/")
    return result.tree.policies[mode]["resilience"]


def _from_file(file: Path) -> dict[str, Any]:
    from pydantic import ValidationError

    from autonomous.core.errors import Problem
    from autonomous.resources.policy.resilience import ResiliencePolicy
    from autonomous.resources.yaml_lines import format_path, line_for, load_documents

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{file}: cannot read: {e}") from None
    docs, problems = load_documents(text, str(file))
    if problems:
        raise ValueError("\n".join(str(prob) for prob in problems))
    found = [d for d in docs if isinstance(d.data, dict) and d.data.get("kind") == "PolicySet"
             and isinstance((d.data.get("spec") or {}).get("policy"), dict)
             and "resilience" in d.data["spec"]["policy"]]
    if not found:
        raise ValueError(f"{file}: no PolicySet with spec.policy.resilience in this file")
    doc, prefix = found[0], ("spec", "policy", "resilience")
    try:
        model = ResiliencePolicy.model_validate(doc.data["spec"]["policy"]["resilience"])
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            path = prefix + tuple(err["loc"])
            lines.append(str(Problem(doc.file, line_for(doc, path), format_path(path),
                                     err["msg"])))
        raise ValueError("\n".join(lines)) from None
    return model.model_dump(mode="json")


class PolicyFiles:
    """A policy source for :class:`Admission`: loads at once (ValueError when bad), then
    re-loads when a file changes; a bad edit raises LookupError so the last good policy
    stays (and is reported once through ``on_problem``)."""

    def __init__(self, path: str | Path, mode: str = "governed",
                 on_problem: Callable[[str], None] | None = None) -> None:
        self.path, self.mode = Path(path), mode
        self.on_problem = on_problem
        self._sig = _signature(self.path)
        self.policy = load_resilience_policy(self.path, mode)
        self._policy = self._with_never_shed(self.policy)

    @staticmethod
    def _with_never_shed(policy: dict[str, Any]) -> dict[str, Any]:
        adm = dict(policy["admission"])
        adm["never_shed"] = list(NEVER_SHED) + [p for p in adm["never_shed"]
                                                if p not in NEVER_SHED]
        return {**policy, "admission": adm}

    def __call__(self) -> dict[str, Any]:
        sig = _signature(self.path)
        if sig != self._sig:
            self._sig = sig
            try:
                self.policy = load_resilience_policy(self.path, self.mode)
            except ValueError as e:
                if self.on_problem is not None:
                    self.on_problem(str(e))
                raise LookupError(str(e)) from None
            self._policy = self._with_never_shed(self.policy)
        return self._policy


def make_admission(path: str | Path, mode: str = "governed",
                   on_problem: Callable[[str], None] | None = None) -> Admission:
    """An Admission for a sample service reading its policy from ``path``; ValueError when
    the policy is bad."""
    return admission_for_policy(PolicyFiles(path, mode, on_problem))
