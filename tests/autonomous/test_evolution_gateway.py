"""Real Traefik: a weight change moves traffic; device paths never split; metrics per version."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from autonomous.gateway.config import Backend, Front, dynamic_config
from autonomous.gateway.metrics import parse_metrics, scrape
from autonomous.gateway.process import Traefik
from autonomous.testing import free_port, serve_http, text_handler
from tests.conftest import needs_traefik

pytestmark = needs_traefik


def _front(port: int, p1: int, p2: int, w1: int, w2: int, device: str = "1") -> Front:
    return Front(name="nexus", port=port, device_version=device, device_paths=("/motor",),
                 backends=(Backend("1", p1, w1), Backend("2", p2, w2)))


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[Traefik, str, int, int]]:
    with serve_http(text_handler("1")) as s1, serve_http(text_handler("2")) as s2:
        p1, p2 = s1.server_address[1], s2.server_address[1]
        front_port = free_port()
        gw = Traefik([_front(front_port, p1, p2, 100, 0)], tmp_path, free_port())
        gw.start()
        try:
            yield gw, f"http://127.0.0.1:{front_port}", p1, p2
        finally:
            gw.stop()


def _versions(url: str, n: int) -> list[str]:
    with httpx.Client(timeout=2) as c:
        return [c.get(url).text for _ in range(n)]


def _until(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_weight_change_moves_traffic_and_device_paths_never_split(
        gateway: tuple[Traefik, str, int, int]) -> None:
    gw, url, p1, p2 = gateway
    assert set(_versions(f"{url}/api", 20)) == {"1"}
    gw.configure([_front(gw.fronts[0].port, p1, p2, 50, 50)])
    assert _until(lambda: set(_versions(f"{url}/api", 20)) == {"1", "2"})
    # split traffic, but the device endpoint goes to exactly one version
    assert set(_versions(f"{url}/motor/move", 40)) == {"1"}
    gw.configure([_front(gw.fronts[0].port, p1, p2, 0, 100, device="2")])
    assert _until(lambda: set(_versions(f"{url}/api", 20)) == {"2"})
    assert set(_versions(f"{url}/motor/move", 20)) == {"2"}
    # counted at the gateway: per-version request counts with codes
    traffic = scrape(gw.metrics_url)
    assert traffic["nexus-v1"].total >= 20 + 40 and traffic["nexus-v2"].total >= 40
    assert traffic["nexus-v1"].requests.get("200", 0) == traffic["nexus-v1"].total
    assert traffic["nexus-v2"].buckets


def test_dynamic_config_is_deterministic_and_rejects_bad_fronts() -> None:
    f = _front(9, 1, 2, 90, 10)
    assert dynamic_config([f]) == dynamic_config([f])
    doc = dynamic_config([f])["http"]
    assert doc["services"]["nexus-split"]["weighted"]["services"] == [
        {"name": "nexus-v1", "weight": 90}, {"name": "nexus-v2", "weight": 10}]
    assert doc["routers"]["nexus-device"]["service"] == "nexus-v1"
    with pytest.raises(ValueError, match="no backend"):
        dynamic_config([_front(9, 1, 2, 0, 0)])
    with pytest.raises(ValueError, match="device version"):
        dynamic_config([_front(9, 1, 2, 50, 50, device="3")])


def test_parse_metrics_sums_codes_per_service() -> None:
    text = ('# TYPE traefik_service_requests_total counter\n'
            'traefik_service_requests_total{code="200",method="GET",protocol="http",'
            'service="a-v1@file"} 7\n'
            'traefik_service_requests_total{code="503",method="GET",protocol="http",'
            'service="a-v1@file"} 2\n')
    t = parse_metrics(text)["a-v1"]
    assert t.total == 9 and t.errors == 2
