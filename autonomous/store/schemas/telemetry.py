"""Telemetry tables: indexed log lines (FTS5), tail offsets, spans, alerts and their lifecycle.

``log_lines`` holds one row per structured line; ``log_fts`` is its FTS5 index (message and
searchable fields, rowid = log_lines.id). ``alerts`` holds one row per alert episode
(fingerprint + start); ``alert_transitions`` every state change with who and when;
``alert_notifications`` is the outbox: one row per notice and receiver, delivered once.
"""

COMPONENT = "telemetry"

MIGRATIONS = [
    """
    CREATE TABLE log_lines (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        level TEXT NOT NULL,
        levelno INTEGER NOT NULL,
        logger TEXT NOT NULL,
        service TEXT NOT NULL,
        message TEXT NOT NULL,
        trace_id TEXT,
        span_id TEXT,
        signature TEXT,
        extra TEXT NOT NULL
    );
    CREATE INDEX log_lines_ts ON log_lines(ts);
    CREATE INDEX log_lines_trace ON log_lines(trace_id) WHERE trace_id IS NOT NULL;
    CREATE INDEX log_lines_signature ON log_lines(signature, service) WHERE signature IS NOT NULL;
    CREATE VIRTUAL TABLE log_fts USING fts5(message, fields, tokenize='unicode61');
    CREATE TABLE log_offsets (
        path TEXT PRIMARY KEY,
        inode INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE spans (
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        parent_id TEXT,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        service TEXT NOT NULL,
        start REAL NOT NULL,
        end REAL NOT NULL,
        duration_ms REAL NOT NULL,
        status TEXT NOT NULL,
        attributes TEXT NOT NULL,
        PRIMARY KEY (trace_id, span_id)
    ) WITHOUT ROWID;
    CREATE INDEX spans_start ON spans(start);
    CREATE TABLE traces (
        trace_id TEXT PRIMARY KEY,
        root_span_id TEXT,
        root_parent TEXT,
        name TEXT NOT NULL,
        service TEXT NOT NULL,
        start REAL NOT NULL,
        duration_ms REAL,
        status TEXT NOT NULL
    );
    CREATE INDEX traces_start ON traces(start);
    CREATE INDEX traces_duration ON traces(duration_ms);
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        fingerprint TEXT NOT NULL,
        rule TEXT NOT NULL,
        source TEXT NOT NULL,
        labels TEXT NOT NULL,
        severity TEXT NOT NULL,
        summary TEXT NOT NULL,
        state TEXT NOT NULL,
        value REAL,
        pending_since REAL NOT NULL,
        fired_at REAL,
        resolved_at REAL,
        acked_by TEXT,
        acked_at REAL,
        notified_at REAL,
        notify_count INTEGER NOT NULL DEFAULT 0,
        resolved_notified INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL
    );
    CREATE INDEX alerts_open ON alerts(fingerprint, state);
    CREATE INDEX alerts_state ON alerts(state);
    CREATE TABLE alert_transitions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        ts REAL NOT NULL,
        from_state TEXT,
        to_state TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE INDEX alert_transitions_fp ON alert_transitions(fingerprint, ts);
    CREATE INDEX alert_transitions_alert ON alert_transitions(alert_id);
    CREATE TABLE alert_flaps (
        fingerprint TEXT PRIMARY KEY,
        flapping INTEGER NOT NULL,
        since REAL NOT NULL,
        notified INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE alert_groups (
        group_key TEXT PRIMARY KEY,
        labels TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_flush REAL
    );
    CREATE TABLE alert_notifications (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        group_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        receiver TEXT NOT NULL,
        alert_ids TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at REAL NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        delivered_at REAL,
        last_error TEXT
    );
    CREATE INDEX alert_notifications_due ON alert_notifications(state, next_attempt_at);
    CREATE TABLE alert_silences (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        matchers TEXT NOT NULL,
        starts_at REAL NOT NULL,
        ends_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        comment TEXT NOT NULL,
        created_at REAL NOT NULL,
        expired_by TEXT
    );
    CREATE TABLE anomaly_seen (
        rule TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        labels TEXT NOT NULL,
        last_ts REAL NOT NULL,
        value REAL,
        PRIMARY KEY (rule, fingerprint)
    );
    """,
]
