"""Learning tables: proposals (one row per learned change, its lifecycle state), their event
history, feedback, and the Neural Router's logged decisions (with propensities)."""

COMPONENT = "learning"

MIGRATIONS = [
    """
    CREATE TABLE learning_proposals (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL,
        source TEXT NOT NULL,
        title TEXT NOT NULL,
        file TEXT NOT NULL,
        path TEXT NOT NULL,
        old TEXT NOT NULL,
        new TEXT NOT NULL,
        low REAL,
        high REAL,
        state TEXT NOT NULL,
        generation INTEGER,
        cycle INTEGER NOT NULL,
        evidence TEXT NOT NULL,
        evaluation TEXT NOT NULL,
        guard TEXT NOT NULL,
        approval_id TEXT,
        applied_at REAL,
        bake_until REAL,
        apply_commit TEXT,
        revert_commit TEXT,
        closed_cycle INTEGER,
        reason TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX learning_proposals_state ON learning_proposals(state);
    CREATE INDEX learning_proposals_key ON learning_proposals(key, closed_cycle);
    CREATE TABLE learning_proposal_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        proposal_id TEXT NOT NULL REFERENCES learning_proposals(id) ON DELETE CASCADE,
        ts REAL NOT NULL,
        from_state TEXT,
        to_state TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE INDEX learning_proposal_events_p ON learning_proposal_events(proposal_id, ts);
    CREATE TABLE learning_feedback (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        area TEXT NOT NULL,
        kind TEXT NOT NULL,
        bad INTEGER NOT NULL,
        value REAL,
        ref TEXT,
        comment TEXT,
        actor TEXT NOT NULL
    );
    CREATE INDEX learning_feedback_area_ts ON learning_feedback(area, ts);
    CREATE INDEX learning_feedback_ts ON learning_feedback(ts);
    CREATE TABLE learning_route_decisions (
        id TEXT PRIMARY KEY,
        ts REAL NOT NULL,
        query_class TEXT NOT NULL,
        model TEXT NOT NULL,
        propensity REAL NOT NULL,
        allowed TEXT NOT NULL,
        success INTEGER,
        latency_ms REAL,
        outcome_ts REAL
    );
    CREATE INDEX learning_route_decisions_ts ON learning_route_decisions(ts);
    CREATE INDEX learning_route_decisions_class ON learning_route_decisions(query_class, model);
    """,
]
