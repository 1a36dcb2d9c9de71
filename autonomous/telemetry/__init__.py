"""Telemetry hub: metrics (time series, rollups, Prometheus/InfluxDB export), structured logs
(FTS5 search), W3C tracing, alert manager with real channels, dashboards."""
