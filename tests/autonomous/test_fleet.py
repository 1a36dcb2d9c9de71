"""A fleet on the engines made for it: two real operators (two "hosts" on one machine, on
different ports) scraped by a real central Prometheus with the generated configuration and
recording rules, and sending their alerts to a real central Alertmanager routed per host."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from autonomous.cli.main import dispatch
from autonomous.fleet.grafana import grafana_dashboard, panel_query
from autonomous.fleet.hosts import FleetHost, parse_host
from autonomous.fleet.render import render_fleet
from autonomous.telemetry.alertmanager_channel import alertmanager_items
from autonomous.testing import fast_alerting, need_binary, terminate, wait_for
from tests.conftest import free_port, make_tree, service_yaml


_need = need_binary


def _wait(what: str, predicate: Callable[[], Any], seconds: float = 60.0) -> Any:
    return wait_for(predicate, what, seconds, poll=0.2,
                    errors=(httpx.HTTPError, KeyError, IndexError, ValueError))


def test_parse_host_says_what_to_fix():
    assert parse_host("robot-1=127.0.0.1:8791") == FleetHost("robot-1", "127.0.0.1:8791")
    assert parse_host("a=h:1,http://x/y").receiver_url == "http://x/y"
    for bad, words in [("robot", "NAME=ADDRESS:PORT"), ("r b=h:1", "name"),
                       ("r=h", "ADDRESS:PORT"), ("r=h:99999", "ADDRESS:PORT"),
                       ("r=h:1,ftp://x", "http")]:
        with pytest.raises(ValueError, match=words):
            parse_host(bad)


def test_alertmanager_items_add_host_labels_and_stringify():
    payload = {"alerts": [
        {"status": "firing", "labels": {"alertname": "service_down", "service": "nexus"},
         "annotations": {"summary": "down", "value": 0.0, "flapping": False,
                         "acknowledged_by": None},
         "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "/api/telemetry/alerts?id=1"},
        {"status": "resolved", "labels": {"alertname": "x"}, "annotations": {},
         "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2026-01-01T00:05:00Z",
         "generatorURL": "/g"}]}
    firing, resolved = alertmanager_items(payload, {"host": "robot-1"})
    assert firing["labels"] == {"alertname": "service_down", "service": "nexus",
                                "host": "robot-1"}
    assert firing["annotations"] == {"summary": "down", "value": "0.0"}
    assert "endsAt" not in firing  # firing: Alertmanager's resolve_timeout applies
    assert resolved["endsAt"] == "2026-01-01T00:05:00Z"


def test_grafana_dashboards_only_export_prometheus_series():
    spec = {"title": "Health", "description": "d", "panels": [
        {"title": "Score", "type": "stat", "metric": "health.score", "aggregation": "last"},
        {"title": "p95", "type": "stat", "metric": "service_probe_latency_ms",
         "aggregation": "p95", "unit": "ms", "labels": {"service": "nexus"}},
        {"title": "CPU", "type": "timeseries", "metric": "cpu.percent", "unit": "%"},
        {"title": "Services", "type": "table", "source": "services"}]}
    dash = grafana_dashboard("health", spec)
    exprs = [p["targets"][0]["expr"] for p in dash["panels"]]
    assert exprs == ['atlas_health_score{host=~"$host"}',
                     'quantile_over_time(0.95, atlas_service_probe_latency_seconds'
                     '{host=~"$host",service="nexus"}[$__range])',
                     'atlas_cpu_ratio{host=~"$host"}']
    # the unit of the exported series (base units), not the panel's "ms" / "%"
    units = [p["fieldConfig"]["defaults"]["unit"] for p in dash["panels"]]
    assert units == ["none", "s", "percentunit"]
    assert "Not exported" in dash["description"] and "Services" in dash["description"]
    assert dash["__inputs"][0]["pluginId"] == "prometheus"
    assert panel_query({"type": "stat", "metric": "x", "aggregation": "rate"}) \
        == 'rate(atlas_x{host=~"$host"}[$__rate_interval])'


def test_fleet_cli_writes_valid_configs(tmp_path, capsys):
    out = tmp_path / "fleet"
    rc = dispatch(["fleet", "--root", str(Path(__file__).resolve().parents[2]),
                   "--host", "a=127.0.0.1:9001", "--host", "b=127.0.0.1:9002,http://t/b",
                   "--alertmanager", "http://127.0.0.1:9093", "--out", str(out)])
    assert rc == 0
    names = sorted(p.name for p in out.iterdir())
    assert {"prometheus.yml", "alertmanager.yml", "atlas-fleet.rules.yml",
            "grafana-health.json", "grafana-services.json"} <= set(names)
    am = yaml.safe_load((out / "alertmanager.yml").read_text())
    assert [r["matchers"] for r in am["route"]["routes"]] == [['host="a"'], ['host="b"']]
    assert am["receivers"][2]["webhook_configs"][0]["url"] == "http://t/b"
    json.loads((out / "grafana-health.json").read_text())
    for tool, args in (("promtool", ["check", "config", str(out / "prometheus.yml")]),
                       ("amtool", ["check-config", str(out / "alertmanager.yml")])):
        path = shutil.which(tool)
        if path:  # shipped with the prometheus / prometheus-alertmanager packages
            res = subprocess.run([path, *args], capture_output=True, text=True, check=False)
            assert res.returncode == 0, res.stdout + res.stderr
    assert dispatch(["fleet", "--host", "a=x:1", "--host", "a=y:2", "--out",
                     str(tmp_path / "dup")]) == 2
    assert "unique" in capsys.readouterr().err


def _host_tree(path: Path, host: str, service_port: int, am_url: str, broken: bool) -> Path:
    svc = service_yaml(f"svc-{host}", service_port)
    if broken:  # a probe path the sample service does not serve: down for as long as it runs
        svc = svc.replace("path: /health", "path: /not-served")
    root = make_tree(path, {f"svc-{host}": svc})
    cfg = root / "config" / "autonomous.yaml"
    text = cfg.read_text()
    text = text.replace("alertmanager: []", "alertmanager: [{name: central, url: '"
                        + am_url + "', labels: {host: " + host + "}}]")
    cfg.write_text(text)
    return fast_alerting(root, window_seconds=5)


@pytest.fixture
def central(tmp_path) -> Iterator[dict[str, Any]]:
    am_bin = shutil.which("prometheus-alertmanager") or _need("alertmanager",
                                                               "prometheus-alertmanager")
    prom_bin = _need("prometheus", "prometheus")
    procs: list[subprocess.Popen[bytes]] = []
    yield {"am_bin": am_bin, "prom_bin": prom_bin, "procs": procs}
    for p in procs:
        terminate(p)


@pytest.mark.e2e
@pytest.mark.slow
def test_two_hosts_on_central_prometheus_and_alertmanager(tmp_path, operator_factory, central):
    am_port, prom_port, op_a, op_b = free_port(), free_port(), free_port(), free_port()
    am_url, prom_url = f"http://127.0.0.1:{am_port}", f"http://127.0.0.1:{prom_port}"
    hosts = [FleetHost("a", f"127.0.0.1:{op_a}"), FleetHost("b", f"127.0.0.1:{op_b}")]
    out = tmp_path / "fleet"
    render_fleet(out, hosts, {}, alertmanager=am_url, scrape_interval_s=1,
                 operator_down_for_s=1, group_wait_s=0)
    logs = tmp_path / "central.log"
    with open(logs, "ab") as log:
        central["procs"].append(subprocess.Popen(
            [central["am_bin"], f"--config.file={out / 'alertmanager.yml'}",
             f"--storage.path={tmp_path / 'am'}", f"--web.listen-address=127.0.0.1:{am_port}",
             "--cluster.listen-address="], stdout=log, stderr=log))
        central["procs"].append(subprocess.Popen(
            [central["prom_bin"], f"--config.file={out / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'prom'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=log, stderr=log))
    a = operator_factory(_host_tree(tmp_path / "a", "a", free_port(), am_url, broken=True),
                         data_dir=tmp_path / "data-a", port=op_a).start()
    b = operator_factory(_host_tree(tmp_path / "b", "b", free_port(), am_url, broken=False),
                         data_dir=tmp_path / "data-b", port=op_b).start()

    def query(expr: str) -> dict[str, float]:
        r = httpx.get(f"{prom_url}/api/v1/query", params={"query": expr}, timeout=2)
        res = r.json()["data"]["result"]
        return {s["metric"].get("host", ""): float(s["value"][1]) for s in res}

    def am_alerts() -> list[dict[str, Any]]:
        return httpx.get(f"{am_url}/api/v2/alerts", timeout=2).json()

    # fleet-wide health from the recording rules: both hosts up, only a's service down
    _wait("both hosts scraped", lambda: query("fleet:atlas_hosts_up:sum").get("") == 2)
    down = _wait("a's service counted down",
                 lambda: (d := query("host:atlas_services_down:sum")).get("a", 0) >= 1 and d)
    assert down.get("b") == 0, down
    # a's operator pushed its own alert, labelled with its host and routed to its receiver
    pushed = _wait("service_down from host a in Alertmanager", lambda: [
        x for x in am_alerts() if x["labels"].get("alertname") == "service_down"
        and x["labels"].get("service") == "svc-a"])
    assert {x["labels"]["host"] for x in pushed} == {"a"}
    # every alert is routed to its own host's receiver (b's healthy service may still blip
    # on a loaded machine: if it does, its alert goes to host-b, never to host-a)
    for x in am_alerts():
        assert [r["name"] for r in x["receivers"]] == [f"host-{x['labels']['host']}"], x
    # an operator that dies cannot say so: Prometheus raises AtlasOperatorDown for it
    b.stop()
    gone = _wait("AtlasOperatorDown for b", lambda: [
        x for x in am_alerts() if x["labels"].get("alertname") == "AtlasOperatorDown"])
    assert {x["labels"]["host"] for x in gone} == {"b"}
    assert [r["name"] for r in gone[0]["receivers"]] == ["host-b"]
    assert a.proc is not None and a.proc.poll() is None
