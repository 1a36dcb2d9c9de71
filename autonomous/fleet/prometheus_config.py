"""The central Prometheus: scrape every host's operator, fleet-wide recording rules, and the
one alert a host cannot raise itself (its operator stopped answering)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autonomous.fleet.hosts import FleetHost

__all__ = ["JOB", "prometheus_config", "recording_rules"]

JOB = "atlas-operator"


def prometheus_config(hosts: Sequence[FleetHost], *, rules_file: str,
                      alertmanager: str | None, scrape_interval_s: float = 15,
                      evaluation_interval_s: float = 15, token_file: str | None = None
                      ) -> dict[str, Any]:
    """``prometheus.yml``: one static target per host with its ``host`` label."""
    job: dict[str, Any] = {
        "job_name": JOB, "metrics_path": "/metrics", "honor_labels": False,
        "static_configs": [{"targets": [h.target], "labels": {"host": h.name}}
                           for h in hosts],
    }
    if token_file:  # operators that authenticate reads too (non-loopback listen)
        job["authorization"] = {"type": "Bearer", "credentials_file": token_file}
    cfg: dict[str, Any] = {
        "global": {"scrape_interval": _dur(scrape_interval_s),
                   "evaluation_interval": _dur(evaluation_interval_s)},
        "rule_files": [rules_file],
        "scrape_configs": [job],
    }
    if alertmanager:
        scheme, _, address = alertmanager.partition("://")
        cfg["alerting"] = {"alertmanagers": [{"scheme": scheme,
                                              "static_configs": [{"targets": [address]}]}]}
    return cfg


def recording_rules(*, operator_down_for_s: float = 60) -> dict[str, Any]:
    """Fleet-wide health as recording rules, plus ``AtlasOperatorDown``."""
    sel = f'{{job="{JOB}"}}'
    return {"groups": [
        {"name": "atlas-fleet", "rules": [
            {"record": "host:atlas_health_score:max",
             "expr": f"max by (host) (atlas_health_score{sel})"},
            {"record": "host:atlas_services_down:sum",
             "expr": f"sum by (host) (1 - atlas_service_up{sel})"},
            {"record": "host:atlas_operator_up:max",
             "expr": f"max by (host) (up{sel})"},
            {"record": "fleet:atlas_health_score:min",
             "expr": "min(host:atlas_health_score:max)"},
            {"record": "fleet:atlas_services_down:sum",
             "expr": "sum(host:atlas_services_down:sum)"},
            {"record": "fleet:atlas_hosts_up:sum",
             "expr": "sum(host:atlas_operator_up:max)"},
            {"record": "fleet:atlas_hosts:count",
             "expr": "count(host:atlas_operator_up:max)"},
        ]},
        {"name": "atlas-fleet-alerts", "rules": [
            {"alert": "AtlasOperatorDown", "expr": f"up{sel} == 0",
             "for": _dur(operator_down_for_s),
             "labels": {"severity": "critical", "category": "availability"},
             "annotations": {"summary": "the ATLAS operator on {{ $labels.host }} does not "
                                        "answer its /metrics scrape"}},
        ]},
    ]}


def _dur(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms" if seconds < 1 or seconds != int(seconds) \
        else f"{int(seconds)}s"
