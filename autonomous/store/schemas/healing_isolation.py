"""A crash loop's isolation due (a failed last try led to it; the diff plans it until done or
a human rejects it) survives an operator restart: ``healing_service_state.isolate_due`` (JSON:
the phase the try was made in, its failure, its attempt). Without it a restart would leave
the service paused in back-off with no isolation planned until its slow retry."""

COMPONENT = "healing_isolation"

MIGRATIONS = [
    "ALTER TABLE healing_service_state ADD COLUMN isolate_due TEXT;",
]
