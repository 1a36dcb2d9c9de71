"""One human-alert store: self-healing's alerts for humans live in the telemetry ``alerts``
table (labels ``alertname=self_healing_alert``, ``service``, ``source=self_healing``,
``reason``, ``severity`` and ``incident`` when there is one), their context for the human
(incident, logs tail, graph link…) in the new ``details`` column. The old ``healing_alerts``
table is folded in — rows the telemetry hub had not already copied (it turned every
``alert.human`` event into an alert too), marked notified so nothing is announced twice — and
dropped. Runs after the ``telemetry`` and ``healing`` components (module order)."""

COMPONENT = "human_alerts"

MIGRATIONS = [
    """
    ALTER TABLE alerts ADD COLUMN details TEXT;
    INSERT INTO alerts(fingerprint, rule, source, labels, severity, summary, state, value,
                       pending_since, fired_at, resolved_at, notified_at, notify_count,
                       resolved_notified, updated_at, details)
    SELECT 'healing_alerts:' || h.id, 'self_healing_alert', 'manual',
           json_object('alertname', 'self_healing_alert', 'reason', h.reason,
                       'service', h.service,
                       'severity', CASE
                           WHEN json_extract(h.payload, '$.severity') IN ('critical', 'high')
                           THEN 'critical'
                           WHEN json_extract(h.payload, '$.severity') IN ('low', 'info')
                           THEN 'info' ELSE 'warning' END,
                       'source', 'self_healing'),
           CASE WHEN json_extract(h.payload, '$.severity') IN ('critical', 'high')
                THEN 'critical'
                WHEN json_extract(h.payload, '$.severity') IN ('low', 'info')
                THEN 'info' ELSE 'warning' END,
           COALESCE(json_extract(h.payload, '$.message'), h.reason),
           CASE WHEN h.resolved_at IS NULL THEN 'firing' ELSE 'resolved' END, NULL,
           h.ts, h.ts, h.resolved_at, h.ts, 1, CASE WHEN h.resolved_at IS NULL THEN 0 ELSE 1 END,
           COALESCE(h.resolved_at, h.ts), h.payload
    FROM healing_alerts h
    WHERE NOT EXISTS (
        SELECT 1 FROM alerts a
        WHERE a.source = 'manual'
          AND json_extract(a.labels, '$.source') = 'self_healing'
          AND json_extract(a.labels, '$.service') = h.service
          AND json_extract(a.labels, '$.reason') = h.reason
          AND a.pending_since BETWEEN h.ts - 60 AND h.ts + 60);
    DROP TABLE healing_alerts;
    CREATE INDEX alerts_rule ON alerts(rule, state);
    """,
]
