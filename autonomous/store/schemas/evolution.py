"""Evolution tables: rollouts (one row per rollout, its current phase), their event history,
and the quarantine of versions that were rolled back; (2) update proposals found by a scan or
asked for through the API, and what became of them."""

COMPONENT = "evolution"

MIGRATIONS = [
    """
    CREATE TABLE evolution_rollouts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        service TEXT NOT NULL,
        from_version TEXT NOT NULL,
        to_version TEXT NOT NULL,
        phase_index INTEGER NOT NULL,
        phase_started_at REAL NOT NULL,
        status TEXT NOT NULL,
        reason TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX evolution_rollouts_service ON evolution_rollouts(service, status);
    CREATE TABLE evolution_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        rollout_id INTEGER NOT NULL REFERENCES evolution_rollouts(id) ON DELETE CASCADE,
        ts REAL NOT NULL,
        action TEXT NOT NULL,
        phase_index INTEGER NOT NULL,
        reason TEXT NOT NULL,
        evidence TEXT NOT NULL
    );
    CREATE INDEX evolution_events_ts ON evolution_events(ts);
    CREATE TABLE evolution_quarantine (
        service TEXT NOT NULL,
        version TEXT NOT NULL,
        reason TEXT NOT NULL,
        ts REAL NOT NULL,
        PRIMARY KEY (service, version)
    );
    """,
    """
    CREATE TABLE evolution_proposals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        service TEXT NOT NULL,
        current TEXT NOT NULL,
        version TEXT NOT NULL,
        origin TEXT NOT NULL,
        command TEXT,
        state TEXT NOT NULL,
        reason TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX evolution_proposals_state ON evolution_proposals(state, service);
    """,
]
