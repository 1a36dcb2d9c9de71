"""Health monitor tables: anomaly events, the persisted anomaly model, minute reports."""

COMPONENT = "health"

MIGRATIONS = [
    """
    CREATE TABLE health_anomalies (
        id TEXT PRIMARY KEY,
        metric TEXT NOT NULL,
        start REAL NOT NULL,
        end_ts REAL,
        peak_ts REAL NOT NULL,
        peak_value REAL NOT NULL,
        peak_z REAL NOT NULL,
        baseline REAL,
        score REAL NOT NULL,
        severity TEXT NOT NULL,
        last_seen REAL NOT NULL,
        metrics TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX health_anomalies_start ON health_anomalies(start);
    CREATE TABLE health_models (
        name TEXT PRIMARY KEY,
        trained_at REAL,
        saved_at REAL NOT NULL,
        blob BLOB NOT NULL
    );
    CREATE TABLE health_reports (
        ts REAL PRIMARY KEY,
        score REAL NOT NULL,
        report TEXT NOT NULL
    );
    """,
]
