"""Core operator tables: settings, generations, governance, approvals, service revisions."""

COMPONENT = "core"

MIGRATIONS = [
    """
    CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL);
    CREATE TABLE generations (
        generation INTEGER PRIMARY KEY,
        hash TEXT NOT NULL,
        commit_sha TEXT,
        created_at REAL NOT NULL,
        resources TEXT NOT NULL,
        policy TEXT NOT NULL,
        config TEXT NOT NULL
    );
    CREATE TABLE governance_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        old_mode TEXT,
        new_mode TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT
    );
    CREATE TABLE approvals (
        id TEXT PRIMARY KEY,
        controller TEXT NOT NULL,
        resource TEXT NOT NULL,
        action_kind TEXT NOT NULL,
        action TEXT NOT NULL,
        action_hash TEXT NOT NULL,
        generation INTEGER NOT NULL,
        mode TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        state TEXT NOT NULL,
        decided_at REAL,
        decided_by TEXT,
        reason TEXT
    );
    CREATE INDEX approvals_state ON approvals(state);
    CREATE TABLE service_revisions (
        service TEXT NOT NULL,
        spec_hash TEXT NOT NULL,
        generation INTEGER NOT NULL,
        spec TEXT NOT NULL,
        first_seen REAL NOT NULL,
        known_good INTEGER NOT NULL DEFAULT 0,
        blocked INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (service, spec_hash)
    );
    CREATE TABLE supervised_processes (
        service TEXT PRIMARY KEY,
        pid INTEGER NOT NULL,
        create_time REAL NOT NULL,
        started_at REAL NOT NULL
    );
    """,
]

MIGRATIONS.append(
    """
    CREATE TABLE service_overrides (
        service TEXT PRIMARY KEY,
        isolated INTEGER NOT NULL DEFAULT 0,
        paused INTEGER NOT NULL DEFAULT 0,
        reason TEXT,
        updated_at REAL NOT NULL
    );
    """
)

MIGRATIONS.append(
    """
    ALTER TABLE supervised_processes ADD COLUMN spec_hash TEXT NOT NULL DEFAULT '';
    """
)
