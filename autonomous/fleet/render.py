"""Write the whole fleet set-up into one folder (what ``atlas-autonomous fleet`` does)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from autonomous.fleet.alertmanager_config import alertmanager_config
from autonomous.fleet.grafana import grafana_dashboard
from autonomous.fleet.hosts import FleetHost
from autonomous.fleet.prometheus_config import prometheus_config, recording_rules

__all__ = ["RULES_FILE", "render_fleet"]

RULES_FILE = "atlas-fleet.rules.yml"


def render_fleet(out: Path, hosts: Sequence[FleetHost], dashboards: dict[str, Any], *,
                 alertmanager: str | None, default_url: str | None = None,
                 scrape_interval_s: float = 15, token_file: str | None = None,
                 operator_down_for_s: float = 60, group_wait_s: float = 30) -> list[Path]:
    """prometheus.yml, the rules file, alertmanager.yml and one Grafana JSON per dashboard
    (``dashboards``: name → Dashboard spec as a dict). Each file is written atomically."""
    if not hosts:
        raise ValueError("a fleet needs at least one host (--host NAME=ADDRESS:PORT)")
    names = [h.name for h in hosts]
    if len(set(names)) != len(names):
        raise ValueError(f"host names must be unique: {names}")
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {
        "prometheus.yml": _yaml(prometheus_config(
            hosts, rules_file=RULES_FILE, alertmanager=alertmanager,
            scrape_interval_s=scrape_interval_s, evaluation_interval_s=scrape_interval_s,
            token_file=token_file)),
        RULES_FILE: _yaml(recording_rules(operator_down_for_s=operator_down_for_s)),
        "alertmanager.yml": _yaml(alertmanager_config(hosts, default_url=default_url,
                                                      group_wait_s=group_wait_s)),
    }
    for name, spec in sorted(dashboards.items()):
        files[f"grafana-{name}.json"] = json.dumps(grafana_dashboard(name, spec), indent=2)
    written = []
    for fname, text in files.items():
        path = out / fname
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text + ("" if text.endswith("\n") else "\n"))
        os.replace(tmp, path)
        written.append(path)
    return written


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
