"""Test helpers shipped with the package: a real context on a temp dir with a fake clock.

    ctx = make_context(tmp_path)            # copies the default tree, FakeClock, real Store
    ctx.desired.reload()                    # generation 1 in force

Every outside effect has a real implementation; tests swap the clock, never the store.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from autonomous.core.ports import free_port
from autonomous.context import OperatorContext
from autonomous.core.clock import Clock, FakeClock
from autonomous.core.events import EventBus
from autonomous.desired import DesiredStateManager
from autonomous.governance import Approvals, Governance
from autonomous.learning.knowledge_graph import KnowledgeGraph
from autonomous.status import StatusBoard
from autonomous.store import Store

__all__ = ["calm_gates", "copy_default_tree", "default_root", "free_port", "make_context",
           "fast_alerting", "need_binary", "serve_http", "terminate", "text_handler",
           "wait_for"]


def fast_alerting(root: Path, *, window_seconds: int,
                  group_wait_seconds: int | None = 0) -> Path:
    """Make the test tree's ``service_down`` fire at once: telemetry evaluates every second,
    the rule looks at ``window_seconds`` with no ``for`` delay, and (unless None) groups wait
    ``group_wait_seconds``. Edits the copied default files in place, text for text, and fails
    loudly when their layout no longer matches."""
    cfg = root / "config" / "autonomous.yaml"
    edits = [(cfg, "telemetry: {enabled: true, interval_seconds: 15}",
              "telemetry: {enabled: true, interval_seconds: 1}")]
    pol = root / "policies" / "telemetry.yaml"
    edits.append((pol, "window_seconds: 30\n            reduce: last\n            for_seconds: 15",
                  f"window_seconds: {window_seconds}\n            reduce: last\n"
                  "            for_seconds: 0"))
    if group_wait_seconds is not None:
        edits.append((pol, "group_wait_seconds: 30", f"group_wait_seconds: {group_wait_seconds}"))
    for path, old, new in edits:
        text = path.read_text()
        assert old in text, f"{path}: {old!r} not found; the default layout changed"
        path.write_text(text.replace(old, new))
    return root


def need_binary(binary: str, package: str) -> str:
    """The path of ``binary``, or skip the calling test naming the Debian package to install
    (``.ci/run`` installs every package of ``.ci/apt-packages.txt``)."""
    path = shutil.which(binary)
    if path is None:
        import pytest

        pytest.skip(f"{binary} is not installed: apt-get install -y {package} "
                    "(listed in .ci/apt-packages.txt; .ci/run installs it)")
    return path


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 20.0, *,
             poll: float = 0.05, errors: tuple[type[BaseException], ...] = (
                 OSError, KeyError, IndexError, TypeError, ValueError)) -> object:
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` passes
    (AssertionError naming ``what`` and the last value). ``errors`` raised meanwhile count as
    "not yet" (httpx's errors are OSErrors' cousins: pass them in ``errors``)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except errors:
            pass
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what} ({timeout} s); last={last!r}")


def terminate(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM ``proc``, SIGKILL it after ``timeout`` seconds; its exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def default_root() -> Path:
    """The repository checkout holding the default desired_state/, policies/, config/."""
    return Path(__file__).resolve().parent.parent


def copy_default_tree(dest: Path) -> Path:
    for d in ("desired_state", "policies", "config"):
        shutil.copytree(default_root() / d, dest / d, dirs_exist_ok=True)
    return dest


CALM_GATES = """# Written by autonomous.testing.calm_gates: tests share this machine's CPU with the
# processes they start, so host-load gates and automatic survival would make them
# nondeterministic. Gate behaviour itself is tested with injected readings.
apiVersion: atlas.autonomous/v1
kind: PolicySet
metadata:
  name: tests-calm-gates-{mode}
spec:
  mode: {mode}
  policy:
    resilience:
      gates:
        cpu_percent: {{HIGH: null, MEDIUM: null, LOW: null}}
        ram_percent: {{HIGH: null, MEDIUM: null, LOW: null}}
        gpu_percent: {{HIGH: null, MEDIUM: null, LOW: null}}
      survival:
        auto: {{enabled: false}}
"""


def calm_gates(root: Path) -> Path:
    """Overlays (one per governance mode) that turn host-load gates and automatic survival
    off in a test tree; everything else stays the default policy."""
    for mode in ("governed", "growth", "emergency_stop"):
        (root / "policies" / f"zz-tests-calm-{mode}.yaml").write_text(
            CALM_GATES.format(mode=mode))
    return root


def text_handler(body: str) -> type[BaseHTTPRequestHandler]:
    """A handler answering every GET with 200 and ``body`` (which server answered), logging
    nothing: for ``serve_http``."""
    data = body.encode()

    class TextHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server hook
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a: object) -> None:
            pass

    return TextHandler


@contextlib.contextmanager
def serve_http(handler: type[BaseHTTPRequestHandler], port: int = 0
               ) -> Iterator[ThreadingHTTPServer]:
    """A real HTTP server with ``handler`` on 127.0.0.1 (``port`` 0: a free one) in a thread;
    shut down and closed on exit. Its URL: ``f"http://127.0.0.1:{srv.server_address[1]}"``."""
    srv = ThreadingHTTPServer(("127.0.0.1", port), handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True, name=f"http:{port}")
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


def make_context(tmp_path: Path, *, root: Path | None = None, clock: Clock | None = None,
                 token: str = "test-token", load: bool = True) -> OperatorContext:
    root = root or calm_gates(copy_default_tree(tmp_path / "root"))
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    clock = clock or FakeClock()
    store = Store(data / "atlas.db").open()
    bus = EventBus()
    desired = DesiredStateManager(root, store, bus, clock)
    gov = Governance(store, bus, clock, lambda: desired.current.tree.policies
                     if desired.current else None)
    ctx = OperatorContext(root=root, data_dir=data, store=store, bus=bus, clock=clock,
                          desired=desired, governance=gov, approvals=Approvals(store, bus, clock),
                          graph=KnowledgeGraph(store, clock), status=StatusBoard(), token=token)
    if load:
        desired.reload()
    return ctx
