"""Vetting jobs: the pre-rollout checks of an update proposal running in the background.

One row per proposal while its checks run: the step and its detail (progress), the operator
process that runs them, and the process groups the job started (the regression suite's, the
sandboxed candidate's: pid and create time), so an operator restarted mid-vetting stops what
the dead one left before it runs the checks again. The row is deleted when the checks end
(the outcome is on the proposal), so the table never grows past the open proposals."""

COMPONENT = "evolution_vetting"

MIGRATIONS = [
    """
    CREATE TABLE evolution_vetting (
        proposal_id INTEGER PRIMARY KEY REFERENCES evolution_proposals(id) ON DELETE CASCADE,
        step TEXT NOT NULL,
        detail TEXT NOT NULL,
        operator_pid INTEGER NOT NULL,
        procs TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        started_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
]
