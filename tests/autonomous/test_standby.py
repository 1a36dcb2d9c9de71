"""Warm standby at the data plane: two real sample-service instances behind one Traefik front
(the second listed as a standby server, the front's routers with the retry middleware); a
client sends steady requests while an instance is SIGKILLed (and brought back) several times:
no request fails at the front. The same kills without a standby do fail requests."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from autonomous.gateway.config import Backend, Front, dynamic_config
from autonomous.gateway.process import Traefik
from autonomous.testing import free_port, terminate, wait_for
from tests.conftest import needs_traefik

pytestmark = [needs_traefik, pytest.mark.timeout(90)]


def test_standby_servers_and_retry_in_the_document() -> None:
    f = Front("nexus", 9000, (Backend("1", 1, 100, standby_ports=(2,)),), "1", ("/api/move",))
    http = dynamic_config([f])["http"]
    servers = http["services"]["nexus-v1"]["loadBalancer"]["servers"]
    assert servers == [{"url": "http://127.0.0.1:1"}, {"url": "http://127.0.0.1:2"}]
    assert http["middlewares"] == {"nexus-retry": {"retry": {"attempts": 4, "status": ["502"]}}}
    assert http["routers"]["nexus"]["middlewares"] == ["nexus-retry"]
    assert http["routers"]["nexus-device"]["middlewares"] == ["nexus-retry"]
    plain = dynamic_config([Front("nexus", 9000, (Backend("1", 1, 100),), "1")])["http"]
    assert "middlewares" not in plain and "middlewares" not in plain["routers"]["nexus"]


class Instance:
    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "autonomous.sample_stack", "--name", "nexus", "--port",
             str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=0.5,
                                   trust_env=False).status_code == 200,
                 f"instance on :{self.port} healthy", errors=(httpx.HTTPError, OSError))

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)


def _kills(tmp_path: Path, standby: bool, kills: int) -> tuple[int, int]:
    """(requests failed at the front, requests sent) during ``kills`` SIGKILLs of the active
    instance, each brought back before the next kill."""
    a, b = Instance(free_port()), Instance(free_port())
    instances = [a, b] if standby else [a]
    fport = free_port()
    backend = Backend("1", a.port, 100, standby_ports=(b.port,) if standby else ())
    gw = Traefik([Front("nexus", fport, (backend,), "1")], tmp_path / f"gw-{standby}",
                 free_port())
    sent = failed = 0
    done = threading.Event()

    def load() -> None:
        nonlocal sent, failed
        # a slow answer on a loaded host is not a lost request: only errors count
        with httpx.Client(timeout=10, trust_env=False) as c:
            while not done.is_set():
                sent += 1
                try:
                    if c.get(f"http://127.0.0.1:{fport}/api/work?ms=1").status_code != 200:
                        failed += 1
                except httpx.HTTPError:
                    failed += 1

    t = threading.Thread(target=load)
    try:
        for i in instances:
            i.start()
        gw.start()
        t.start()
        for k in range(kills):
            n = sent
            wait_for(lambda: sent >= n + 30, "load flowing before the kill")
            victim = instances[k % len(instances)]
            victim.kill()
            n = sent
            wait_for(lambda: sent >= n + 30, "load after the kill")
            victim.start()
        n = sent
        wait_for(lambda: sent >= n + 30, "load after the last restart")
    finally:
        done.set()
        if t.is_alive():
            t.join(10)
        gw.stop()
        for i in instances:
            i.stop()
    return failed, sent


def test_sigkills_with_standby_lose_no_request(tmp_path: Path) -> None:
    failed, sent = _kills(tmp_path, standby=True, kills=4)
    assert failed == 0 and sent > 200, (failed, sent)


def test_sigkills_without_standby_do_fail_requests(tmp_path: Path) -> None:
    failed, sent = _kills(tmp_path, standby=False, kills=1)
    assert failed > 0, (failed, sent)
