"""mypy is clean on the whole package (``autonomous/`` and ``controllers/``, the ``files`` of
``[tool.mypy]`` in pyproject.toml, with the pydantic plugin)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


# a cold mypy run (a fresh clone has no .mypy_cache) on a busy 2-core host took over 120 s:
# the suite's default timeout is for tests that wait on the operator, not for this one
@pytest.mark.timeout(900)
def test_mypy_is_clean_on_autonomous_and_controllers():
    pytest.importorskip("mypy", reason="mypy is in the test extras: pip install -e '.[test]'")
    out = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary"],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
