"""Self-healing tables: failure memory, learned classifications, breakers, history, alerts,
per-service healing state and human overrides."""

COMPONENT = "healing"

MIGRATIONS = [
    """
    CREATE TABLE healing_failures (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        error_signature TEXT NOT NULL,
        service TEXT,
        error_type TEXT,
        timestamp REAL NOT NULL,
        context TEXT NOT NULL,
        recovery_used TEXT,
        success INTEGER,
        notes TEXT,
        duration_s REAL
    );
    CREATE INDEX healing_failures_sig ON healing_failures(error_signature);
    CREATE INDEX healing_failures_ts ON healing_failures(timestamp);
    CREATE TABLE healing_knowledge (
        error_signature TEXT NOT NULL,
        error_type TEXT NOT NULL,
        strategy TEXT NOT NULL,
        successes INTEGER NOT NULL DEFAULT 0,
        failures INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL,
        PRIMARY KEY (error_signature, error_type, strategy)
    );
    CREATE TABLE healing_breakers (
        name TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        opened_at REAL,
        opened_count INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL
    );
    CREATE TABLE healing_history (
        id TEXT PRIMARY KEY,
        service TEXT NOT NULL,
        source TEXT NOT NULL,
        error_type TEXT NOT NULL,
        severity TEXT NOT NULL,
        rule TEXT NOT NULL,
        error_signature TEXT NOT NULL,
        strategy TEXT,
        gate TEXT,
        state TEXT NOT NULL,
        success INTEGER,
        message TEXT NOT NULL,
        detected_at REAL NOT NULL,
        finished_at REAL,
        mttr_s REAL,
        attempts TEXT NOT NULL,
        graph_node TEXT,
        mode TEXT,
        generation INTEGER
    );
    CREATE INDEX healing_history_service ON healing_history(service, detected_at);
    CREATE TABLE healing_alerts (
        id TEXT PRIMARY KEY,
        service TEXT NOT NULL,
        reason TEXT NOT NULL,
        ts REAL NOT NULL,
        payload TEXT NOT NULL,
        resolved_at REAL
    );
    CREATE INDEX healing_alerts_service ON healing_alerts(service, ts);
    CREATE TABLE healing_service_state (
        service TEXT PRIMARY KEY,
        phase TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL,
        paused_by_human INTEGER NOT NULL DEFAULT 0,
        forced_strategy TEXT,
        degraded TEXT,
        fallback TEXT,
        reason TEXT,
        updated_at REAL NOT NULL
    );
    """,
]
