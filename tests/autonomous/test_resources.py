"""Validation: every bad-input class reported with file, line and field path, all at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from autonomous.resources.jsonschema import stale
from autonomous.resources.loader import load_paths, load_tree
from autonomous.resources.yaml_lines import load_documents
from autonomous.testing import copy_default_tree, default_root

SERVICE = """apiVersion: atlas.autonomous/v1
kind: Service
metadata:
  name: {name}
spec:
  command: ["{{python}}", "-c", "pass"]
  port: 9100
{extra}"""


def problems_for(tmp_path: Path, text: str, name: str = "bad.yaml") -> list[str]:
    root = copy_default_tree(tmp_path / "root")
    (root / "desired_state" / name).write_text(text)
    return [str(p) for p in load_tree(root).problems]


def test_default_tree_is_valid():
    result = load_tree(default_root())
    assert [str(p) for p in result.problems] == []
    assert set(result.tree.services) >= {"nexus", "robot"}


@pytest.mark.parametrize("extra, expected", [
    ("  bogus: 1\n", "desired_state/bad.yaml:8: spec.bogus: unknown field 'bogus'; allowed: "),
    ("  restart: {policy: sometimes}\n",
     "desired_state/bad.yaml:8: spec.restart.policy: 'sometimes': Input should be 'always', "
     "'on-failure' or 'never'"),
    ("  stop_grace_seconds: soon\n", "desired_state/bad.yaml:8: spec.stop_grace_seconds: 'soon':"),
    ("  depends_on: [ghost]\n", "desired_state/bad.yaml:8: spec.depends_on[0]: references "
                                "Service 'ghost', which does not exist"),
], ids=["unknown-field", "bad-enum", "wrong-type", "missing-reference"])
def test_bad_service_field(tmp_path, extra, expected):
    found = problems_for(tmp_path, SERVICE.format(name="svc", extra=extra))
    assert any(p.startswith(expected) for p in found), found


def test_missing_field_and_shell_string(tmp_path):
    text = ("apiVersion: atlas.autonomous/v1\nkind: Service\nmetadata: {name: a}\nspec:\n"
            "  port: 1\n---\napiVersion: atlas.autonomous/v1\nkind: Service\n"
            "metadata: {name: b}\nspec:\n  command: python -m x\n")
    found = problems_for(tmp_path, text)
    assert "desired_state/bad.yaml:4: spec.command: missing required field 'command'" in found
    assert any(p.startswith("desired_state/bad.yaml:11: spec.command: 'python -m x': must be "
                            "an argv list") for p in found), found


def test_yaml_syntax_error_and_duplicate_key(tmp_path):
    found = problems_for(tmp_path, "apiVersion: atlas.autonomous/v1\nkind: [Service\n")
    assert any(p.startswith("desired_state/bad.yaml:3:") and "YAML syntax error" in p
               for p in found), found
    dup = SERVICE.format(name="svc", extra="  port: 9200\n")
    found = problems_for(tmp_path / "2", dup)
    assert any(p.startswith("desired_state/bad.yaml:8: spec.port: duplicate key 'port' (first "
                            "defined on line 7)") for p in found), found


def test_duplicate_resource_name(tmp_path):
    found = problems_for(tmp_path, SERVICE.format(name="nexus", extra=""), name="zz.yaml")
    assert any(p.startswith("desired_state/zz.yaml:4: metadata.name: duplicate Service 'nexus': "
                            "already defined at desired_state/nexus.yaml:") for p in found), found


def test_unknown_governance_mode_overlay(tmp_path):
    root = copy_default_tree(tmp_path / "root")
    (root / "policies" / "chaos.yaml").write_text(
        "apiVersion: atlas.autonomous/v1\nkind: PolicySet\nmetadata: {name: chaos}\n"
        "spec:\n  mode: chaos\n  policy: {}\n")
    found = [str(p) for p in load_tree(root).problems]
    assert any(p.startswith("policies/chaos.yaml:5: spec.mode: 'chaos': Input should be "
                            "'governed', 'growth' or 'emergency_stop'") for p in found), found


def test_policy_errors_point_at_the_defining_file(tmp_path):
    root = copy_default_tree(tmp_path / "root")
    gov = root / "policies" / "governed.yaml"
    gov.write_text(gov.read_text().replace("rollback: require_approval", "rollback: maybe"))
    found = [str(p) for p in load_tree(root).problems]
    line = next(i for i, t in enumerate(gov.read_text().splitlines(), 1) if "rollback" in t)
    assert any(p.startswith(f"policies/governed.yaml:{line}: spec.policy.governance.actions."
                            "rollback: 'maybe'") and "mode 'governed'" in p for p in found), found


def test_all_problems_reported_not_only_first(tmp_path):
    text = SERVICE.format(name="svc", extra="  bogus: 1\n  restart: {policy: x}\n")
    text += "---\n" + SERVICE.format(name="other", extra="  depends_on: [nowhere]\n")
    found = problems_for(tmp_path, text)
    assert len([p for p in found if p.startswith("desired_state/bad.yaml")]) == 3, found


def test_emptied_desired_state_refused(tmp_path):
    root = copy_default_tree(tmp_path / "root")
    for f in (root / "desired_state").glob("*.yaml"):
        if "kind: Service" in f.read_text():
            f.write_text("")
    result = load_tree(root)
    assert result.tree is None
    assert any("declares no Service" in str(p) for p in result.problems)


def test_a_tree_whose_only_service_is_invalid_names_that_problem_only(tmp_path):
    root = copy_default_tree(tmp_path / "root")
    services = [f for f in (root / "desired_state").glob("*.yaml")
                if "kind: Service" in f.read_text()]
    for f in services[1:]:
        f.write_text("")
    text = services[0].read_text()
    services[0].write_text(text.replace("command:", "comand:", 1))
    found = [str(p) for p in load_tree(root).problems]
    assert found and not any("declares no Service" in p for p in found), found
    assert any("comand" in p for p in found), found


def test_dependency_cycle(tmp_path):
    text = SERVICE.format(name="a", extra="  depends_on: [b]\n") + "---\n" + \
        SERVICE.format(name="b", extra="  depends_on: [a]\n")
    found = problems_for(tmp_path, text)
    assert any("dependency cycle" in p for p in found), found


def test_line_map_for_nested_values():
    docs, problems = load_documents("a:\n  b:\n    - x\n    - y: 1\n", "f.yaml")
    assert problems == []
    assert docs[0].lines[("a", "b", 1, "y")] == 4


def test_load_paths_single_file(tmp_path):
    f = tmp_path / "one.yaml"
    f.write_text(SERVICE.format(name="solo", extra=""))
    result = load_paths([f])
    assert result.problems == []
    assert result.tree is not None and "solo" in result.tree.services


def test_validate_cli_exit_codes(tmp_path):
    root = copy_default_tree(tmp_path / "root")
    ok = subprocess.run([sys.executable, "-m", "controllers.cli", "validate", "--root",
                         str(root)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (root / "desired_state" / "bad.yaml").write_text(SERVICE.format(name="x", extra="  zz: 1\n"))
    bad = subprocess.run([sys.executable, "-m", "controllers.cli", "validate", "--root",
                          str(root)], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "desired_state/bad.yaml:8: spec.zz: unknown field 'zz'" in bad.stdout


def test_committed_json_schemas_are_fresh():
    assert stale(default_root() / "schemas") == [], \
        "run 'atlas-autonomous schemas' and commit the result"


def test_json_schema_accepts_default_service_and_rejects_unknown_field():
    import json

    import jsonschema
    import yaml

    schema = json.loads((default_root() / "schemas" / "Service.json").read_text())
    doc = yaml.safe_load((default_root() / "desired_state" / "nexus.yaml").read_text())
    jsonschema.validate(doc, schema)
    doc["spec"]["bogus"] = 1
    with pytest.raises(jsonschema.ValidationError, match="bogus"):
        jsonschema.validate(doc, schema)


def test_env_values_are_never_echoed_in_problems(tmp_path):
    found = problems_for(tmp_path, SERVICE.format(
        name="svc", extra="  env: {DB_PASSWORD: 99887766123, OTHER: [1]}\n"))
    env_problems = [p for p in found if "spec.env" in p]
    assert any("spec.env.DB_PASSWORD" in p for p in env_problems), found
    assert not any("99887766123" in p for p in found), found


def test_two_services_on_one_port_is_a_problem(tmp_path):
    text = SERVICE.format(name="one", extra="") + "---\n" + SERVICE.format(name="two", extra="")
    found = problems_for(tmp_path, text)
    assert any(p.startswith("desired_state/bad.yaml:") and "spec.port: port 9100 is already "
               "used by Service 'one'" in p for p in found), found


def test_symlink_out_of_the_tree_is_refused(tmp_path):
    outside = tmp_path / "outside.yaml"
    outside.write_text(SERVICE.format(name="stranger", extra="").replace("9100", "9177"))
    root = copy_default_tree(tmp_path / "root")
    (root / "desired_state" / "link.yaml").symlink_to(outside)
    result = load_tree(root)
    assert result.tree is None
    found = [str(p) for p in result.problems]
    assert any("link.yaml" in p and "outside" in p and "refused" in p for p in found), found


ALIAS_BOMB = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
              + "".join(f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n"
                        for p, c in zip("abcdefgh", "bcdefghi")))


@pytest.mark.parametrize("text, expected", [
    (ALIAS_BOMB, "alias"),
    ("x: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than"),
    ("x: " + "[" * 50000 + "]" * 50000 + "\n", "nested deeper than"),  # libyaml segfaulted
    ("x:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 400)), "nested deeper than"),
], ids=["alias-bomb", "deep-flow", "deep-flow-50k", "deep-block"])
def test_hostile_yaml_is_a_problem_with_a_line(tmp_path, text, expected):
    assert len(ALIAS_BOMB) < 600
    found = problems_for(tmp_path, text)
    assert any(p.startswith("desired_state/bad.yaml:") and expected in p
               and not p.startswith("desired_state/bad.yaml:0:") for p in found), found


def test_deep_flow_is_found_when_libyaml_stops_at_its_own_nesting_limit(monkeypatch):
    """PyYAML 6.0.4's libyaml scans ahead and raises at its own nesting depth before
    yielding the tokens past the limit; the line comes from the pure-Python scanner."""
    import yaml

    from autonomous.resources import yaml_lines

    def too_deep() -> Exception:
        return yaml.scanner.ScannerError("while increasing flow level", None,
                                         "exceeded maximum nesting depth", None)

    class StopsEarly(yaml_lines._COMPOSER):
        def get_token(self):
            if getattr(self, "_given", 0) >= 6:
                raise too_deep()
            self._given = getattr(self, "_given", 0) + 1
            return super().get_token()

        def get_node(self):  # the composer meets the same limit
            raise too_deep()

    monkeypatch.setattr(yaml_lines, "_COMPOSER", StopsEarly)
    text = "a: 1\nx: " + "[" * 5000 + "]" * 5000 + "\n"
    docs, problems = yaml_lines.load_documents(text, "bad.yaml")
    assert docs == [] and [(p.file, p.line, p.message) for p in problems] == [
        ("bad.yaml", 2, "nested deeper than 100 levels")], problems


def test_oversized_file_is_a_problem(tmp_path):
    from autonomous.resources.yaml_lines import ParseLimits

    root = copy_default_tree(tmp_path / "root")
    big = root / "desired_state" / "big.yaml"
    big.write_text("# padding\n" * (5 * 1024 * 1024 // 10 + 1))
    limits = ParseLimits(max_file_bytes=1024 * 1024)
    result = load_paths([root / "desired_state"], base=root, limits=limits)
    found = [str(p) for p in result.problems]
    assert any(p.startswith("desired_state/big.yaml:1:") and "byte limit" in p
               for p in found), found


def test_non_utf8_file_reports_its_line(tmp_path):
    root = copy_default_tree(tmp_path / "root")
    (root / "desired_state" / "bad.yaml").write_bytes(b"a: 1\nb: 2\nc: \xff\xfe\n")
    found = [str(p) for p in load_tree(root).problems]
    assert any(p.startswith("desired_state/bad.yaml:3:") and "not UTF-8" in p
               for p in found), found


def test_generation_records_commit_and_dirty(tmp_path):
    from autonomous.core.events import EventBus
    from autonomous.desired.manager import DesiredStateManager
    from autonomous.store import Store

    root = copy_default_tree(tmp_path / "root")
    git = ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (root / ".gitignore").write_text(".atlas-data/\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "tree"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    store = Store(tmp_path / "data" / "atlas.db").open()
    try:
        m = DesiredStateManager(root, store, EventBus())
        gen = m.reload()
        assert gen is not None and (gen.commit, gen.dirty) == (head, False)
        svc = next((root / "desired_state").glob("*.yaml"))
        svc.write_text(svc.read_text() + "\n# an uncommitted edit\n")
        gen = m.reload()
        assert gen is not None and (gen.commit, gen.dirty) == (head, True)
        assert m.info()["dirty"] is True
    finally:
        store.close()


def test_schema_error_and_missing_reference_are_both_reported(tmp_path):
    found = problems_for(tmp_path, SERVICE.format(
        name="svc", extra="  bogus: 1\n  depends_on: [ghost]\n"))
    assert any("spec.bogus: unknown field" in p for p in found), found
    assert any("spec.depends_on[0]: references Service 'ghost', which does not exist" in p
               for p in found), found


def test_dependent_of_an_invalid_service_is_told_it_is_invalid(tmp_path):
    text = (SERVICE.format(name="core", extra="  bogus: 1\n") + "---\n"
            + SERVICE.format(name="edge", extra="  depends_on: [core]\n").replace("9100", "9101"))
    found = problems_for(tmp_path, text)
    assert any("spec.depends_on[0]: depends on Service 'core', which is invalid (see its "
               "problems)" in p for p in found), found
    assert not any("which does not exist" in p for p in found), found


def test_invalid_operator_config_gives_only_its_error(tmp_path):
    root = copy_default_tree(tmp_path / "root")
    cfg = root / "config" / "autonomous.yaml"
    text = cfg.read_text()
    assert "reload_step_ms:" in text
    import re
    cfg.write_text(re.sub(r"reload_step_ms: *\d+", "reload_step_ms: 0", text))
    found = [str(p) for p in load_tree(root).problems]
    assert any("reload_step_ms" in p for p in found), found
    assert not any("no OperatorConfig found" in p for p in found), found


def test_parse_limits_come_from_the_config(tmp_path):
    from autonomous.core.events import EventBus
    from autonomous.desired.manager import DesiredStateManager
    from autonomous.store import Store

    root = copy_default_tree(tmp_path / "root")
    cfg = root / "config" / "autonomous.yaml"
    cfg.write_text(cfg.read_text().replace("  reload_step_ms:", "  parse_limits: {max_file_bytes: "
                                           "2048}\n  reload_step_ms:", 1))
    store = Store(tmp_path / "data" / "atlas.db").open()
    try:
        m = DesiredStateManager(root, store, EventBus())
        assert m.reload() is not None and m.limits().max_file_bytes == 2048
        (root / "desired_state" / "pad.yaml").write_text("# pad\n" * 1000)
        assert m.reload() is None
        assert any("pad.yaml:1:" in str(p) and "2048-byte limit" in str(p)
                   for p in m.error.problems), m.error.problems
    finally:
        store.close()
