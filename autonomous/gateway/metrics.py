"""Traefik's Prometheus endpoint, read per service: request counts by code, latency buckets."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["ServiceTraffic", "parse_metrics", "scrape"]


@dataclass
class ServiceTraffic:
    requests: dict[str, float] = field(default_factory=dict)  # status code → count
    buckets: dict[float, float] = field(default_factory=dict)  # le (s) → cumulative count
    latency_sum: float = 0.0

    @property
    def total(self) -> float:
        return sum(self.requests.values())

    @property
    def errors(self) -> float:
        return sum(n for code, n in self.requests.items() if code.startswith("5"))


def _svc(labels: dict[str, str]) -> str:
    # Traefik labels file-provider services as "<name>@file"
    return labels.get("service", "").split("@", 1)[0]


def parse_metrics(text: str) -> dict[str, ServiceTraffic]:
    """Per-service traffic from a Prometheus text exposition of Traefik."""
    out: dict[str, ServiceTraffic] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name == "traefik_service_requests":
            for s in fam.samples:
                if s.name.endswith("_total"):
                    t = out.setdefault(_svc(s.labels), ServiceTraffic())
                    code = s.labels.get("code", "")
                    t.requests[code] = t.requests.get(code, 0.0) + s.value
        elif fam.name == "traefik_service_request_duration_seconds":
            for s in fam.samples:
                t = out.setdefault(_svc(s.labels), ServiceTraffic())
                if s.name.endswith("_bucket"):
                    le = float(s.labels["le"])
                    t.buckets[le] = t.buckets.get(le, 0.0) + s.value
                elif s.name.endswith("_sum"):
                    t.latency_sum += s.value
    return out


def scrape(metrics_url: str, timeout: float = 2.0) -> dict[str, ServiceTraffic]:
    r = httpx.get(metrics_url, timeout=timeout)
    r.raise_for_status()
    return parse_metrics(r.text)
