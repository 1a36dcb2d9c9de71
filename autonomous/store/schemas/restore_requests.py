"""Restore requests: the intent the resilience controller reconciles (through the Executor's
governance gate), with the outcome once settled."""

COMPONENT = "restore_requests"

MIGRATIONS = [
    """
    CREATE TABLE restore_requests (
        id TEXT PRIMARY KEY,
        backup_id TEXT NOT NULL,
        target TEXT NOT NULL,
        actor TEXT NOT NULL,
        created_at REAL NOT NULL,
        state TEXT NOT NULL,
        approval TEXT,
        settled_at REAL,
        error_kind TEXT,
        result TEXT
    );
    CREATE INDEX restore_requests_state ON restore_requests(state, created_at);
    """,
]
