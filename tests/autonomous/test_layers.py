"""Architecture rules checked by a test: autonomous/ never imports controllers/; only the store
module connects to SQLite; subprocesses never go through a shell."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules(pkg: str):
    for path in sorted((ROOT / pkg).rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def _imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_autonomous_never_imports_controllers():
    bad = [f"{p.relative_to(ROOT)} imports {m}" for p, t in _modules("autonomous")
           for m in _imports(t) if m == "controllers" or m.startswith("controllers.")]
    assert bad == []


def test_only_the_store_connects_to_the_operator_db():
    # db.py: the operator's database; files.py: the foreign SQLite files the backup engine
    # copies and checks (a service's data, a restored copy)
    allowed = {"autonomous/store/db.py", "autonomous/store/files.py"}
    offenders = []
    for p, t in _modules("autonomous"):
        rel = str(p.relative_to(ROOT))
        for node in ast.walk(t):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "connect" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "sqlite3" and rel not in allowed):
                offenders.append(rel)
    assert offenders == []


def test_no_shell_true_anywhere():
    bad = []
    for pkg in ("autonomous", "controllers"):
        for p, t in _modules(pkg):
            for node in ast.walk(t):
                if isinstance(node, ast.Call):
                    for kw in node.keywords:
                        if kw.arg == "shell" and getattr(kw.value, "value", False) is True:
                            bad.append(str(p.relative_to(ROOT)))
    assert bad == []
