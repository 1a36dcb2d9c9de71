"""Load and validate a tree of YAML resources; report every problem with file and line.

``load_tree(root)`` reads ``desired_state/``, ``policies/`` and ``config/`` under ``root``;
``load_paths(paths)`` reads the given files and folders. Both return a
:class:`LoadResult` whose ``problems`` list is empty only when everything is valid. Nothing
is returned half-validated: a tree with a problem has ``tree = None``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel, ValidationError, create_model

from autonomous.core.errors import Problem
from autonomous.resources.base import API_VERSION, Strict, config_sections, kinds, policy_sections
from autonomous.resources.kinds.config import OperatorConfigSpec
from autonomous.resources.kinds.policyset import PolicySetSpec
from autonomous.resources.kinds.service import ServiceSpec
from autonomous.resources.policy_merge import effective_policies
from autonomous.resources.validation_problems import problem_from
from autonomous.resources.yaml_lines import (
    Document,
    ParseLimits,
    format_path,
    line_for,
    load_documents,
)

__all__ = [
    "TREE_DIRS",
    "LoadResult",
    "Resource",
    "Tree",
    "content_hash",
    "load_paths",
    "load_tree",
    "policy_model",
]

TREE_DIRS = ("desired_state", "policies", "config")
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Resource:
    kind: str
    name: str
    spec: BaseModel
    labels: dict[str, str]
    file: str
    line: int

    def spec_dict(self) -> dict[str, Any]:
        return self.spec.model_dump(mode="json")


@dataclass
class Tree:
    """A fully valid set of resources, with the effective policy for every governance mode."""

    resources: dict[tuple[str, str], Resource]
    policies: dict[str, dict[str, Any]]
    config: OperatorConfigSpec
    hash: str
    files: list[str] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Resource]:
        return [r for (k, _), r in sorted(self.resources.items()) if k == kind]

    @property
    def services(self) -> dict[str, ServiceSpec]:
        return {r.name: r.spec for r in self.of_kind("Service")}  # type: ignore[misc]


@dataclass
class LoadResult:
    tree: Tree | None
    problems: list[Problem]
    hash: str


@cache
def policy_model() -> type[BaseModel]:
    """The effective-policy model: one required field per discovered policy section."""
    fields: dict[str, Any] = {name: (model, ...) for name, model in policy_sections().items()}
    return create_model("Policy", __base__=Strict, **fields)


@cache
def settings_model() -> type[BaseModel]:
    fields: dict[str, Any] = {name: (model, ...) for name, model in config_sections().items()}
    return create_model("Settings", __base__=Strict, **fields)


def content_hash(files: Iterable[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for rel, data in sorted(files):
        h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


def _collect(paths: Iterable[Path], problems: list[Problem],
             base: str | Path | None) -> list[Path]:
    """YAML files under ``paths``; a symlink whose target leaves its folder is refused."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            top = p.resolve()
            for x in sorted(p.rglob("*")):
                if x.suffix not in (".yaml", ".yml") or any(
                        part.startswith(".") for part in x.relative_to(p).parts):
                    continue
                real = x.resolve()
                if real != top and top not in real.parents:
                    problems.append(Problem(_shown(x, base), 0, "", f"symlink to {real}, "
                                            f"outside {p}: refused; copy the file into the tree"))
                    continue
                if x.is_file():
                    out.append(x)
        elif p.exists():
            out.append(p)
    return out


def load_tree(root: str | Path, *, require_services: bool = True,
              limits: ParseLimits | None = None) -> LoadResult:
    root = Path(root)
    return load_paths([root / d for d in TREE_DIRS], base=root, require_services=require_services,
                      require_config=True, limits=limits)


def load_paths(paths: Iterable[str | Path], *, base: str | Path | None = None,
               require_services: bool = False, require_config: bool = False,
               limits: ParseLimits | None = None) -> LoadResult:
    limits = limits or ParseLimits()
    problems: list[Problem] = []
    path_list = [Path(p) for p in paths]
    for path in path_list:
        if not path.exists():
            problems.append(Problem(str(path), 0, "", "no such file or directory"))
    files = _collect(path_list, problems, base)
    raw: list[tuple[str, bytes]] = []
    docs: list[Document] = []
    for f in files:
        shown = _shown(f, base)
        size = f.stat().st_size
        if size > limits.max_file_bytes:
            raw.append((shown, f"size:{size}:{f.stat().st_mtime_ns}".encode()))
            problems.append(Problem(shown, 1, "", f"file is {size} bytes, more than the "
                                    f"{limits.max_file_bytes}-byte limit: split it"))
            continue
        data = f.read_bytes()
        raw.append((shown, data))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            problems.append(Problem(shown, line, "", f"not UTF-8 text: {exc.reason} "
                                    f"(byte 0x{data[exc.start]:02x})"))
            continue
        found_docs, found_problems = load_documents(text, shown, limits)
        docs += found_docs
        problems += found_problems
    digest = content_hash(raw)
    builder = _TreeBuilder(problems)
    for doc in docs:
        builder.add(doc)
    tree = builder.finish(digest, [f for f, _ in raw], require_services=require_services,
                          require_config=require_config)
    return LoadResult(tree if not problems else None, sorted(set(problems)), digest)


def _shown(f: Path, base: str | Path | None) -> str:
    if base is not None:
        try:
            return str(f.resolve().relative_to(Path(base).resolve()))
        except ValueError:
            pass
    return str(f)


class _TreeBuilder:
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        self.resources: dict[tuple[str, str], Resource] = {}
        self.docs: dict[tuple[str, str], Document] = {}
        # resources whose spec failed validation, and their raw references (still checked)
        self.invalid: set[tuple[str, str]] = set()
        self.raw_refs: list[tuple[Document, tuple, str]] = []

    def problem(self, doc: Document, path: tuple, message: str) -> None:
        self.problems.append(Problem(doc.file, line_for(doc, path), format_path(path), message))

    # -- one document ------------------------------------------------------------------------
    def add(self, doc: Document) -> None:
        data = doc.data
        if not isinstance(data, dict):
            self.problem(doc, (), f"a resource must be a mapping with apiVersion, kind, metadata "
                                  f"and spec, not {type(data).__name__}")
            return
        allowed = {"apiVersion", "kind", "metadata", "spec"}
        for key in sorted(set(map(str, data)) - allowed):
            self.problem(doc, (key,), f"unknown field {key!r}; allowed: {', '.join(sorted(allowed))}")
        for key in ("apiVersion", "kind", "metadata", "spec"):
            if key not in data:
                self.problem(doc, (), f"missing required field {key!r}")
        if data.get("apiVersion", API_VERSION) != API_VERSION:
            self.problem(doc, ("apiVersion",), f"{data['apiVersion']!r} is not supported; "
                                               f"use {API_VERSION!r}")
        kind = data.get("kind")
        registry = kinds()
        if kind is not None and kind not in registry:
            self.problem(doc, ("kind",), f"{kind!r} is not one of {', '.join(sorted(registry))}")
            return
        name, labels = self._metadata(doc, data.get("metadata"))
        if kind is None or name is None or "spec" not in data:
            return
        spec = self._validate(doc, registry[kind], data["spec"], ("spec",))
        if spec is None:
            self.invalid.add((kind, name))
            self._keep_raw_refs(doc, kind, data["spec"])
            return
        rkey = (kind, name)
        if rkey in self.resources:
            first = self.resources[rkey]
            self.problem(doc, ("metadata", "name"), f"duplicate {kind} {name!r}: already defined "
                                                    f"at {first.file}:{first.line}")
            return
        self.resources[rkey] = Resource(kind, name, spec, labels, doc.file,
                                        line_for(doc, ("metadata", "name")))
        self.docs[rkey] = doc

    def _keep_raw_refs(self, doc: Document, kind: str, spec: Any) -> None:
        """References of an invalid Service, taken from the raw document (every problem is
        reported, not only the schema error)."""
        if kind != "Service" or not isinstance(spec, dict):
            return
        deps = spec.get("depends_on")
        if isinstance(deps, list):
            self.raw_refs += [(doc, ("spec", "depends_on", i), d) for i, d in enumerate(deps)
                              if isinstance(d, str)]
        fb = spec.get("fallback")
        if isinstance(fb, dict) and isinstance(fb.get("service"), str):
            self.raw_refs.append((doc, ("spec", "fallback", "service"), fb["service"]))

    def _metadata(self, doc: Document, meta: Any) -> tuple[str | None, dict[str, str]]:
        if meta is None:
            return None, {}
        if not isinstance(meta, dict):
            self.problem(doc, ("metadata",), "must be a mapping with 'name'")
            return None, {}
        for key in sorted(set(map(str, meta)) - {"name", "labels", "annotations"}):
            self.problem(doc, ("metadata", key), f"unknown field {key!r}; allowed: annotations, "
                                                 "labels, name")
        name = meta.get("name")
        if name is None:
            self.problem(doc, ("metadata",), "missing required field 'name'")
            return None, {}
        if not isinstance(name, str) or not _NAME_RE.match(name):
            self.problem(doc, ("metadata", "name"), f"{name!r} is not a valid name: use lowercase "
                                                    "letters, digits, '-', '_' or '.' (max 63)")
            return None, {}
        labels = meta.get("labels") or {}
        if not isinstance(labels, dict):
            self.problem(doc, ("metadata", "labels"), "must be a mapping of strings")
            labels = {}
        return name, {str(k): str(v) for k, v in labels.items()}

    def _validate(self, doc: Document, model: type[BaseModel], data: Any,
                  prefix: tuple) -> BaseModel | None:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                self.problems.append(problem_from(err, doc, prefix, model))
            return None

    # -- the whole tree ------------------------------------------------------------------------
    def finish(self, digest: str, files: list[str], *, require_services: bool,
               require_config: bool) -> Tree | None:
        services = {n: r for (k, n), r in self.resources.items() if k == "Service"}
        # a Service that failed validation has its own problem already: "declares no
        # Service" would send the user looking for a deleted file
        if require_services and not services and not any(k == "Service"
                                                         for k, _ in self.invalid):
            self.problems.append(Problem("desired_state", 0, "", "the desired state declares no "
                                         "Service: refusing it (an emptied file?); declare at "
                                         "least one Service"))
        self._check_references(services)
        self._check_ports(services)
        policies = self._policies()
        config = self._config(require_config)
        if self.problems:
            return None
        return Tree(self.resources, policies, config or _default_config(), digest, files)

    def _check_references(self, services: dict[str, Resource]) -> None:
        names = sorted(services)
        for (kind, name), res in sorted(self.resources.items()):
            doc = self.docs[(kind, name)]
            refs_fn = getattr(res.spec, "service_refs", None)
            refs: list[tuple[tuple, str]] = list(refs_fn()) if callable(refs_fn) else []
            if kind == "Service":
                spec: ServiceSpec = res.spec  # type: ignore[assignment]
                refs += [(("spec", "depends_on", i), d) for i, d in enumerate(spec.depends_on)]
                if spec.fallback and spec.fallback.service:
                    refs.append((("spec", "fallback", "service"), spec.fallback.service))
            for path, ref in refs:
                self._check_ref(doc, path, ref, services, names)
        for doc, path, ref in self.raw_refs:
            self._check_ref(doc, path, ref, services, names)
        self._check_cycles(services)

    def _check_ref(self, doc: Document, path: tuple, ref: str, services: dict[str, Resource],
                   names: list[str]) -> None:
        if ref in services:
            return
        if ("Service", ref) in self.invalid:
            self.problem(doc, path, f"depends on Service {ref!r}, which is invalid (see its "
                                    "problems)")
            return
        self.problem(doc, path, f"references Service {ref!r}, which does not exist; "
                                f"declared services: {', '.join(names) or '(none)'}")

    def _check_ports(self, services: dict[str, Resource]) -> None:
        """Two Services on one port: the second would crash-loop on 'address in use'."""
        owners: dict[int, Resource] = {}
        for name, res in sorted(services.items(), key=lambda kv: (kv[1].file, kv[1].line)):
            port = getattr(res.spec, "port", None)
            if port is None:
                continue
            first = owners.setdefault(port, res)
            if first is not res:
                self.problem(self.docs[("Service", name)], ("spec", "port"),
                             f"port {port} is already used by Service {first.name!r} "
                             f"({first.file}:{first.line}); give each Service its own port")

    def _check_cycles(self, services: dict[str, Resource]) -> None:
        graph = {n: list(r.spec.depends_on) for n, r in services.items()}  # type: ignore[attr-defined]
        state: dict[str, int] = {}

        def visit(n: str, stack: list[str]) -> None:
            state[n] = 1
            for d in graph.get(n, []):
                if state.get(d) == 1:
                    cyc = stack[stack.index(d):] + [d] if d in stack else [n, d]
                    doc = self.docs[("Service", n)]
                    self.problem(doc, ("spec", "depends_on"),
                                 f"dependency cycle: {' -> '.join(cyc)}; remove one edge")
                elif state.get(d) is None and d in graph:
                    visit(d, stack + [d])
            state[n] = 2

        for n in sorted(graph):
            if n not in state:
                visit(n, [n])

    def _policies(self) -> dict[str, dict[str, Any]]:
        sets = [(cast(PolicySetSpec, r.spec), self.docs[k])
                for k, r in sorted(self.resources.items(), key=lambda kv: (kv[1].file, kv[1].line))
                if k[0] == "PolicySet"]
        return effective_policies(sets, policy_model(), self.problem, self.problems)

    def _config(self, required: bool) -> OperatorConfigSpec | None:
        configs = [(r, self.docs[k]) for k, r in self.resources.items() if k[0] == "OperatorConfig"]
        if not configs:
            if required and not any(k == "OperatorConfig" for k, _ in self.invalid):
                self.problems.append(Problem("config", 0, "", "no OperatorConfig found: add "
                                             "config/autonomous.yaml"))
            return None
        if len(configs) > 1:
            for res, doc in configs[1:]:
                self.problem(doc, ("metadata", "name"), f"only one OperatorConfig is allowed; "
                             f"first is at {configs[0][0].file}:{configs[0][0].line}")
            return None
        res, doc = configs[0]
        spec: OperatorConfigSpec = res.spec  # type: ignore[assignment]
        before = len(self.problems)
        self._validate(doc, settings_model(), spec.settings, ("spec", "settings"))
        return spec if len(self.problems) == before else None


def _default_config() -> OperatorConfigSpec:
    from autonomous.resources.kinds.config import SUBSYSTEMS, ControllerSettings

    return OperatorConfigSpec(controllers={s: ControllerSettings(interval_seconds=10.0)
                                           for s in SUBSYSTEMS})
