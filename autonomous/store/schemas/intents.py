"""Intents: what one subsystem asks of the owner of a world object (restart this process,
keep it isolated or paused, run revision N, route to the fallback, degrade its features).
The owner reconciles them; ``autonomous.intents`` is the only module that writes the table."""

COMPONENT = "intents"

MIGRATIONS = [
    """
    CREATE TABLE intents (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        reason TEXT NOT NULL,
        requester TEXT NOT NULL,
        decision TEXT,
        incident TEXT,
        params TEXT NOT NULL,
        created_at REAL NOT NULL,
        state TEXT NOT NULL,
        settled_at REAL,
        outcome TEXT
    );
    CREATE INDEX intents_active ON intents(state, target, kind);
    CREATE INDEX intents_settled ON intents(settled_at);
    """,
]
