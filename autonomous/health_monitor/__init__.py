"""Health monitor: system metrics, service health, anomaly detection, failure prediction and the
aggregated GlobalHealth (run by ``controllers.health``; served under ``/api/health``)."""

from autonomous.health_monitor.anomaly_detector import AnomalyDetector, AnomalyReport
from autonomous.health_monitor.health_aggregator import GlobalHealth, HealthAggregator
from autonomous.health_monitor.service_health import ServiceHealth, ServiceStatus
from autonomous.health_monitor.system_metrics import SystemMetrics

__all__ = ["AnomalyDetector", "AnomalyReport", "GlobalHealth", "HealthAggregator",
           "ServiceHealth", "ServiceStatus", "SystemMetrics"]
