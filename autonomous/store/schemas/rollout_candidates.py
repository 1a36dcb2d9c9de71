"""Rollout candidates: the process each running rollout's candidate runs as (pid, its
create time and argv: the identity a restarted operator checks before it stops one the dead
operator left behind), its backend port and the operator process that started it."""

COMPONENT = "rollout_candidates"

MIGRATIONS = [
    """
    CREATE TABLE evolution_candidates (
        rollout_id INTEGER PRIMARY KEY REFERENCES evolution_rollouts(id) ON DELETE CASCADE,
        service TEXT NOT NULL,
        version TEXT NOT NULL,
        pid INTEGER NOT NULL,
        create_time REAL NOT NULL,
        port INTEGER NOT NULL,
        argv TEXT NOT NULL,
        operator_pid INTEGER NOT NULL,
        started_at REAL NOT NULL
    );
    """,
]
