"""mypy is clean on the healing engine, its controller, the Executor and the intents (the
modules named here are checked fully; what they import is analysed, see pyproject)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ["autonomous/self_healing", "autonomous/intents.py", "controllers/healing.py",
           "controllers/execution.py", "controllers/services_intents.py"]


def test_mypy_is_clean_on_the_healing_loop():
    pytest.importorskip("mypy", reason="mypy is in the test extras: pip install -e '.[test]'")
    out = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", *CHECKED],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
