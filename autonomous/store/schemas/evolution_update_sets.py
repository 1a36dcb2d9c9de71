"""Update sets: several services updated as one ordered, all-or-nothing set (one row per set,
one per member in dependency order)."""

COMPONENT = "evolution_update_sets"

MIGRATIONS = [
    """
    CREATE TABLE evolution_update_sets (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        state TEXT NOT NULL,
        current_index INTEGER NOT NULL,
        failed_member TEXT,
        reason TEXT NOT NULL,
        origin TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX evolution_update_sets_state ON evolution_update_sets(state);
    CREATE TABLE evolution_update_set_members (
        set_id INTEGER NOT NULL REFERENCES evolution_update_sets(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        service TEXT NOT NULL,
        from_version TEXT NOT NULL,
        to_version TEXT NOT NULL,
        command TEXT,
        status TEXT NOT NULL,
        proposal_id INTEGER,
        abort_reason TEXT,
        commit_released INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (set_id, idx)
    );
    CREATE INDEX evolution_update_set_members_service
        ON evolution_update_set_members(service, to_version);
    """,
]
