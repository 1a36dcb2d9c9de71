"""Resilience tables: backup runs, DR drills, survival-mode transitions."""

COMPONENT = "resilience"

MIGRATIONS = [
    """
    CREATE TABLE backup_runs (
        id TEXT PRIMARY KEY,
        plan TEXT NOT NULL,
        kind TEXT NOT NULL,
        repository TEXT NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL NOT NULL,
        ok INTEGER NOT NULL,
        error TEXT,
        stats TEXT NOT NULL
    );
    CREATE INDEX backup_runs_plan ON backup_runs(plan, started_at);
    CREATE TABLE drill_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        backup_id TEXT NOT NULL,
        repository TEXT NOT NULL,
        ts REAL NOT NULL,
        ok INTEGER NOT NULL,
        report TEXT NOT NULL
    );
    CREATE TABLE survival_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        event TEXT NOT NULL,
        reason TEXT NOT NULL,
        actor TEXT NOT NULL,
        details TEXT NOT NULL
    );
    """,
]
