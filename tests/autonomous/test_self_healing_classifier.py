"""Error classification from policy rules, strategy ladders, learning; signatures."""

from __future__ import annotations

import pytest

from autonomous.resources.loader import load_tree
from autonomous.self_healing.error_classifier import ErrorClassifier
from autonomous.self_healing.model import ErrorType, RecoveryStrategy, Severity
from autonomous.self_healing.signatures import error_signature, normalise, similarity
from autonomous.testing import copy_default_tree


@pytest.fixture
def clf(ctx) -> ErrorClassifier:
    return ErrorClassifier(ctx.store, ctx.clock, lambda: ctx.policy()["healing"])


CASES = [
    ("sigkill", None, {"source": "exit", "exit_code": -9, "signal": 9}, "TRANSIENT", "killed"),
    ("segfault", None, {"source": "exit", "exit_code": -11, "signal": 11}, "FATAL",
     "fatal-signal"),
    ("argparse", None, {"source": "exit", "exit_code": 2,
                        "log_tail": ["usage: app [-h]", "app: error: unrecognized arguments: -x"]},
     "CONFIGURATION", "config-error-at-exit"),
    ("after-change", None, {"source": "exit", "exit_code": 1, "config_changed": True},
     "CONFIGURATION", "bad-config-after-change"),
    ("memory", None, {"source": "memory", "memory_over_limit": True}, "RESOURCE",
     "memory-over-limit"),
    ("oom-text", None, {"source": "exit", "exit_code": 1, "log_tail": ["MemoryError"]},
     "RESOURCE", "out-of-memory"),
    ("dep-down", None, {"source": "unhealthy", "dependency_down": True, "running": True},
     "DEPENDENCY", "dependency-down"),
    ("sigstop", None, {"source": "unhealthy", "running": True, "stopped": True,
                       "probe_error": "timeout after 1s"}, "TRANSIENT", "hang-stopped"),
    ("deadlock", None, {"source": "unresponsive", "running": True,
                        "probe_error": "timeout after 1s"}, "TRANSIENT", "hang-unresponsive"),
    ("slow", None, {"source": "slow", "running": True}, "TRANSIENT", "slow-responses"),
    ("http500", None, {"source": "errors", "status_code": 500, "running": True}, "TRANSIENT",
     "error-responses"),
    ("refused", ConnectionRefusedError(111, "Connection refused"), {"source": "exception"},
     "DEPENDENCY", "dependency-refused"),
    ("unknown", RuntimeError("something odd"), {"source": "exception"}, "TRANSIENT", "default"),
]


@pytest.mark.parametrize("exc,ctx_,etype,rule", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_rules_classify(clf, exc, ctx_, etype, rule):
    c = clf.classify_error(exc, {"service": "nexus", **ctx_})
    assert (c.error_type.value, c.rule) == (etype, rule)
    assert c.strategies and c.strategies[-1] is RecoveryStrategy.ALERT_HUMAN


def test_result_unpacks_as_type_severity_recoverable(clf):
    etype, severity, recoverable = clf.classify_error(None, {"source": "exit", "signal": 11,
                                                             "exit_code": -11})[:3]
    assert (etype, severity, recoverable) == (ErrorType.FATAL, Severity.CRITICAL, False)


@pytest.mark.parametrize("etype,first", [("TRANSIENT", "RETRY"), ("CONFIGURATION", "ROLLBACK"),
                                         ("RESOURCE", "RESTART_SERVICE"),
                                         ("DEPENDENCY", "FALLBACK"), ("FATAL", "ISOLATE")])
def test_recovery_strategy_per_type_from_policy(clf, etype, first):
    assert clf.get_recovery_strategy(etype) is RecoveryStrategy(first)


def test_learning_overrides_rules_after_enough_resolutions(clf):
    ctx = {"service": "nexus", "source": "exit", "exit_code": 3, "log_tail": ["boom 17"]}
    first = clf.classify_error(None, ctx)
    assert first.error_type is ErrorType.TRANSIENT and not first.learned
    for _ in range(3):  # learned_min_samples in policies/healing.yaml
        clf.learn_from_error(first, {"strategy": "ROLLBACK", "success": True,
                                     "error_type": "CONFIGURATION"})
    again = clf.classify_error(None, {**ctx, "log_tail": ["boom 99"]})  # same signature
    assert again.learned and again.error_type is ErrorType.CONFIGURATION
    assert again.strategies[0] is RecoveryStrategy.ROLLBACK


def test_learning_below_min_samples_changes_nothing(clf):
    ctx = {"service": "nexus", "source": "exit", "exit_code": 3}
    c = clf.classify_error(None, ctx)
    clf.learn_from_error(c, {"strategy": "ISOLATE", "success": True, "error_type": "FATAL"})
    assert clf.classify_error(None, ctx).error_type is ErrorType.TRANSIENT


def test_rules_are_read_from_policy_on_every_call(tmp_path):
    from autonomous.testing import make_context

    root = copy_default_tree(tmp_path / "root")
    ctx = make_context(tmp_path, root=root)
    clf = ErrorClassifier(ctx.store, ctx.clock, lambda: ctx.policy()["healing"])
    assert clf.classify_error(None, {"source": "exit", "exit_code": 42}).rule == "exited"
    path = root / "policies" / "healing.yaml"
    path.write_text(path.read_text().replace(
        "          - name: dependency-down\n",
        "          - name: exit-42-is-config\n"
        "            when: {exit_code: [42]}\n"
        "            type: CONFIGURATION\n"
        "            severity: high\n"
        "            recoverable: true\n"
        "            strategies: [ROLLBACK]\n"
        "          - name: dependency-down\n"))
    assert ctx.desired.reload() is not None
    c = clf.classify_error(None, {"source": "exit", "exit_code": 42})
    assert (c.rule, c.error_type) == ("exit-42-is-config", ErrorType.CONFIGURATION)


@pytest.mark.parametrize("edit,message", [
    ("text: \"MemoryError|", "invalid regular expression"),
    ("type: RESOURCE\n            severity: high", "TRANSIENT"),
])
def test_bad_rules_are_rejected_with_file_and_line(tmp_path, edit, message):
    root = copy_default_tree(tmp_path / "root")
    path = root / "policies" / "healing.yaml"
    text = path.read_text()
    if edit.startswith("text"):
        text = text.replace('text: "MemoryError|', 'text: "(MemoryError|', 1)
    else:
        text = text.replace("type: RESOURCE\n            severity: high",
                            "type: TRANSIENTISH\n            severity: high", 1)
    path.write_text(text)
    problems = [str(p) for p in load_tree(root).problems]
    assert problems and all("policies/healing.yaml:" in p for p in problems), problems
    assert any(message in p for p in problems), problems


def test_missing_ladder_is_rejected(tmp_path):
    root = copy_default_tree(tmp_path / "root")
    path = root / "policies" / "healing.yaml"
    path.write_text(path.read_text().replace("        FATAL: [ISOLATE, ALERT_HUMAN]\n", ""))
    problems = [str(p) for p in load_tree(root).problems]
    assert any("missing ladder for FATAL" in p for p in problems), problems


@pytest.mark.parametrize("a,b", [
    ("KeyError: 'port' at /srv/app/main.py line 12", "KeyError: 'host' at /opt/x/y.py line 99"),
    ("timeout after 1s to 127.0.0.1:8000", "timeout after 3s to 10.1.2.3:9000"),
    ("request 550e8400-e29b-41d4-a716-446655440000 failed", "request "
     "123e4567-e89b-12d3-a456-426614174000 failed"),
    ("object at 0x7f3a2b1c failed after 12 tries", "object at 0xdeadbeef failed after 3 tries"),
])
def test_signatures_ignore_numbers_ids_paths_addresses(a, b):
    assert normalise(a) == normalise(b)
    assert error_signature("nexus", "exit", "rc=1", a) == error_signature("nexus", "exit",
                                                                          "rc=1", b)


def test_signature_keeps_the_stable_detail():
    assert error_signature("n", "exit", "sig=9", "x") != error_signature("n", "exit", "sig=11",
                                                                         "x")
    assert similarity("n|exit|rc=1|a b c", "n|exit|rc=1|a b c") == 1.0
    assert similarity("n|exit|a b c", "m|probe|x y z") < 0.5
