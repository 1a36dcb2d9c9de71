"""Watching a fleet of hosts with the engines made for it: a central Prometheus scrapes every
host's operator (``/metrics``) and a central Alertmanager receives every host's alerts.

Nothing here aggregates on its own: :mod:`autonomous.fleet.prometheus_config` writes the
Prometheus scrape configuration, recording rules for fleet-wide health and an alert for an
operator that stops answering; :mod:`autonomous.fleet.alertmanager_config` writes
Alertmanager's routes per host; :mod:`autonomous.fleet.grafana` turns the ``Dashboard``
resources into Grafana-importable JSON over that Prometheus.
"""

from autonomous.fleet.hosts import FleetHost, parse_host

__all__ = ["FleetHost", "parse_host"]
