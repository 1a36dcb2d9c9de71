"""Exports against real servers: Prometheus scraping the operator's /metrics (served by a real
uvicorn), and InfluxDB line protocol through influxdb-client into VictoriaMetrics."""

from __future__ import annotations

import re
import subprocess
import threading
import time

import httpx
import pytest
import uvicorn

from autonomous.api.app import create_app
from autonomous.telemetry.exposition import metric_name, render_metrics
from autonomous.telemetry.hub import TelemetryHub
from autonomous.testing import free_port, make_context, need_binary, terminate, wait_for


@pytest.fixture()
def hub_ctx(tmp_path):
    ctx = make_context(tmp_path)
    hub = TelemetryHub.from_context(ctx)
    ctx.subsystems["telemetry"] = hub
    yield ctx, hub
    hub.close()
    ctx.store.close()


_need = need_binary


def _wait(url: str, seconds: float = 15.0) -> None:
    wait_for(lambda: httpx.get(url, timeout=0.5).status_code == 200, f"{url} up", seconds,
             poll=0.1, errors=(httpx.TransportError,))


def test_exposition_names_follow_prometheus_conventions(hub_ctx):
    ctx, hub = hub_ctx
    hub.metrics.collect_metric("cpu.percent", 12.5, {"core-id": "0"})
    hub.metrics.collect_metric("log_errors_total", 3, {"service": "nexus"})
    for name, value in (("service.probe_latency_ms", 12.0), ("ram.used_mb", 3.0),
                        ("disk.free_gb", 2.0), ("heartbeat.uptime_s", 7.0),
                        ("cpu.frequency_mhz", 2400.0), ("net.rx_bps", 10.0),
                        ("net.errors_per_s", 1.5), ("busy_ms_total", 250.0)):
        hub.metrics.collect_metric(name, value, {})
    body, ctype = render_metrics(ctx)
    text = body.decode()
    assert ctype.startswith("text/plain")
    # base units, values converted: seconds, bytes (MiB / GiB), ratios, hertz
    assert 'atlas_cpu_ratio{core_id="0"} 0.125' in text
    values = {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines()
              if ln.startswith("atlas_")}
    assert values == pytest.approx(values | {
        "atlas_service_probe_latency_seconds": 0.012, "atlas_ram_used_bytes": 3 * 2**20,
        "atlas_disk_free_bytes": 2 * 2**30, "atlas_heartbeat_uptime_seconds": 7.0,
        "atlas_cpu_frequency_hertz": 2.4e9, "atlas_net_rx_bytes_per_second": 10.0,
        "atlas_net_errors_per_second": 1.5, "atlas_busy_seconds_total": 0.25})
    scaled = [n for n in values if re.search(r"_(ms|s|kb|mb|gb|mhz|bps|percent)(_total)?$", n)]
    assert not scaled, scaled
    assert "# TYPE atlas_log_errors_total counter" in text
    assert "atlas_telemetry_points_written_total" in text
    assert metric_name("9lives") == "atlas_9lives" and metric_name("atlas_x") == "atlas_x"


def test_names_that_export_alike_give_one_series_not_a_broken_scrape(hub_ctx):
    """``a.b_ms`` and ``a_b_ms``, or ``t_ms`` and ``t_s``, are one Prometheus name: one
    sample is exported (the first stored name's), so the scrape stays valid."""
    from prometheus_client.parser import text_string_to_metric_families

    ctx, hub = hub_ctx
    for name, value in (("hb.lat_ms", 5.0), ("hb_lat_ms", 7.0), ("up_ms", 2000.0),
                        ("up_s", 3.0)):
        hub.metrics.collect_metric(name, value, {"service": "nexus"})
    text = render_metrics(ctx)[0].decode()
    samples = [(s.name, s.labels.get("service"), s.value)
               for f in text_string_to_metric_families(text) for s in f.samples
               if s.name in ("atlas_hb_lat_seconds", "atlas_up_seconds")]
    assert sorted(samples) == [("atlas_hb_lat_seconds", "nexus", 0.005),
                               ("atlas_up_seconds", "nexus", 2.0)]


def test_real_prometheus_scrapes_the_operator(hub_ctx, tmp_path):
    binary = _need("prometheus", "prometheus")
    ctx, hub = hub_ctx
    hub.metrics.collect_metric("scrape.check", 42.5, {"service": "nexus"})
    api_port, prom_port = free_port(), free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=api_port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                   "scrape_configs:\n  - job_name: atlas\n    static_configs:\n"
                   f"      - targets: ['127.0.0.1:{api_port}']\n")
    prom = subprocess.Popen([binary, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path}/tsdb",
                             f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(f"http://127.0.0.1:{api_port}/metrics")
        _wait(f"http://127.0.0.1:{prom_port}/-/ready")
        value = _poll_prometheus(prom_port, 'atlas_scrape_check{service="nexus"}')
    finally:
        terminate(prom)
        server.should_exit = True
        thread.join(timeout=10)
    assert value == 42.5


def _poll_prometheus(port: int, query: str) -> float:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": query})
        result = r.json()["data"]["result"]
        if result:
            return float(result[0]["value"][1])
        time.sleep(0.3)
    raise AssertionError(f"Prometheus never had {query}")


def test_influx_line_protocol_into_victoria_metrics(hub_ctx, tmp_path):
    pytest.importorskip("influxdb_client", reason="optional extra: pip install "
                        "'atlas-autonomous[influx]'")
    binary = _need("victoria-metrics", "victoria-metrics")
    ctx, hub = hub_ctx
    t0 = ctx.clock.now()
    for i in range(5):
        hub.metrics.collect_metric("probe.latency", 10.0 + i, {"service": "robot"}, t0 + i)
    port = free_port()
    vm = subprocess.Popen([binary, f"-httpListenAddr=127.0.0.1:{port}",
                           f"-storageDataPath={tmp_path}/vm", "-retentionPeriod=100y"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(f"http://127.0.0.1:{port}/health")
        sent = hub.metrics.export_to_timeseries_db("influxdb", url=f"http://127.0.0.1:{port}",
                                                   start=t0, end=t0 + 10)
        assert sent == 5
        back = _poll_vm(port, '{__name__="probe.latency_value"}')
    finally:
        terminate(vm)
    assert back["metric"]["service"] == "robot"
    assert back["values"] == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert back["timestamps"] == [int((t0 + i) * 1000) for i in range(5)]


def _poll_vm(port: int, match: str) -> dict:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        httpx.get(f"http://127.0.0.1:{port}/internal/force_flush")
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/export", params={"match[]": match})
        if r.text.strip():
            import json

            return json.loads(r.text.splitlines()[0])
        time.sleep(0.2)
    raise AssertionError(f"VictoriaMetrics never had {match}")
