"""InfluxDB line-protocol export through ``influxdb-client`` (optional extra ``influx``).

Works with InfluxDB 2.x and with servers that accept its ``/api/v2/write`` endpoint, such as
VictoriaMetrics (the path for a fleet of hosts). Each series becomes a measurement named
after the metric, with its labels as tags and the value in the field ``value``.
"""

from __future__ import annotations

from typing import Any

from autonomous.core.errors import PermanentError

__all__ = ["export_influx", "to_line_protocol"]


def _escape(text: str, chars: str) -> str:
    for ch in ("\\", *chars):
        text = text.replace(ch, "\\" + ch)
    return text


def to_line_protocol(name: str, labels: dict[str, str], value: float, ts: float) -> str:
    """One point in InfluxDB line protocol, nanosecond precision."""
    tags = "".join(f",{_escape(k, ',= ')}={_escape(str(v), ',= ')}"
                   for k, v in sorted(labels.items()) if str(v) != "")
    return f"{_escape(name, ', ')}{tags} value={float(value)!r} {round(ts * 1e9)}"


def export_influx(aggregator: Any, *, url: str, org: str = "atlas", bucket: str = "atlas",
                  token: str | None = None, start: float | None = None,
                  end: float | None = None, timeout_seconds: float = 10.0) -> int:
    """Write raw points in ``[start, end]`` (default: the newest point of each series) and
    return how many were sent. Raises :class:`PermanentError` without ``influxdb-client``."""
    try:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS
    except ImportError as exc:  # optional extra
        raise PermanentError("InfluxDB export needs the optional extra: "
                             "pip install 'atlas-autonomous[influx]'") from exc
    lines = list(_lines(aggregator, start, end))
    if not lines:
        return 0
    with InfluxDBClient(url=url, token=token or "", org=org,
                        timeout=int(timeout_seconds * 1000)) as client:
        api = client.write_api(write_options=SYNCHRONOUS)
        for i in range(0, len(lines), 5000):
            api.write(bucket=bucket, org=org, record=lines[i:i + 5000], write_precision="ns")
    return len(lines)


def _lines(aggregator: Any, start: float | None, end: float | None):
    ts_store = aggregator.ts
    if start is None:
        for name, labels, ts, value in ts_store.latest_all():
            yield to_line_protocol(name, labels, value, ts)
        return
    for name, labels in ts_store.series():
        for sid, lab in ts_store.match(name, labels):
            if lab != labels:
                continue
            for s in ts_store.query_ids([sid], start, end, "raw"):
                yield to_line_protocol(name, labels, s.value, s.ts)
