"""The README stands on its own and its command lines parse; validate reports on stdout."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from autonomous.cli.main import build_parser
from controllers.cli import _register

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_readme_does_not_point_outside_the_repository():
    assert "../shared" not in README and "DESIGN.md" not in README


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"```\n(.*?)```", text, re.S)


def _readme_commands() -> list[str]:
    lines = re.findall(r"`(atlas-autonomous [^`]+)`", README)
    for block in _code_blocks(README):
        lines += [ln.split("#")[0].strip() for ln in block.splitlines()
                  if ln.startswith("atlas-autonomous ")]
    return [ln for ln in lines if ln]


@pytest.mark.parametrize("line", _readme_commands())
def test_readme_command_lines_parse(line):
    argv = shlex.split(line.replace("[", "").replace("]", "").replace("|", " "))[1:]
    argv = [a for a in argv if a not in ("reject",)]  # "approve|reject ID": one of them
    try:
        build_parser([_register]).parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"README line does not parse: {line!r} (exit {exc.code})")


def test_validate_prints_success_on_stdout(tmp_path):
    out = subprocess.run([sys.executable, "-m", "controllers.cli", "validate", "--root",
                          str(ROOT)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("ok: no problems")


def test_status_without_an_operator_says_once_how_to_start_it(tmp_path):
    from tests.conftest import free_port

    out = subprocess.run([sys.executable, "-m", "controllers.cli", "status", "--root",
                          str(ROOT), "--url", f"http://127.0.0.1:{free_port()}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.count("cannot reach the operator") == 1
    assert "atlas-autonomous run" in out.stderr


def test_schemas_check_says_what_it_checked():
    out = subprocess.run([sys.executable, "-m", "controllers.cli", "schemas", "--check",
                          "--dir", str(ROOT / "schemas")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("ok: ") and "schemas in" in out.stdout


def test_console_log_text_format_is_one_human_line_per_record():
    import logging

    from controllers.cli import TextFormatter

    rec = logging.makeLogRecord({"name": "atlas.op", "levelno": 20, "levelname": "INFO",
                                 "msg": "listening on %s", "args": ("x",), "created": 0.0,
                                 "port": 1})
    line = TextFormatter().format(rec)
    assert line == "00:00:00 INFO    atlas.op: listening on x port=1"


def _setup_commands() -> list[str]:
    blocks = _code_blocks(README.split("## Using it")[0])
    return [ln for b in blocks for ln in b.splitlines() if "pip install" in ln]


def test_both_setup_commands_install_the_pinned_versions():
    cmds = _setup_commands()
    assert len(cmds) == 2, cmds
    for cmd in cmds:
        argv = shlex.split(cmd.split("&&")[0])
        assert argv[argv.index("-c") + 1] == "constraints.txt", cmd


def test_constraints_pin_every_requirement_within_its_range():
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for ln in (ROOT / "constraints.txt").read_text().splitlines():
        if ln.strip() and not ln.startswith("#"):
            name, version = ln.split("==")
            pins[canonicalize_name(name)] = version.strip()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["test"]
    problems = []
    for text in reqs:
        req = Requirement(text)
        got = pins.get(canonicalize_name(req.name))
        if got is None:
            problems.append(f"{req.name}: not pinned")
        elif not req.specifier.contains(got, prereleases=True):
            problems.append(f"{req.name}=={got} is outside {req.specifier}")
    assert not problems, "constraints.txt: " + "; ".join(problems)
