"""Evolution snapshots: the backup taken before an update (its pre-rollout checks), per
proposal — which repository and backup id a rollback restores the touched data from."""

COMPONENT = "evolution_snapshots"

MIGRATIONS = [
    """
    CREATE TABLE evolution_snapshots (
        proposal_id INTEGER PRIMARY KEY REFERENCES evolution_proposals(id) ON DELETE CASCADE,
        service TEXT NOT NULL,
        backup_id TEXT NOT NULL,
        repository TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
]
