"""Time-series tables: interned series, raw points, 1-minute and 1-hour rollups.

``ts_series`` interns (name, canonical labels JSON) to an integer id so that points are three
numbers. ``ts_rollup`` holds closed buckets per resolution (seconds: 60, 3600) with avg, min,
max, sum and count; ``ts_rollup_state`` records, per resolution, the end of the last rolled-up
bucket (``done_until``) and the earliest late point written below it (``dirty_from``).
"""

COMPONENT = "timeseries"

MIGRATIONS = [
    """
    CREATE TABLE ts_series (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        labels TEXT NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (name, labels)
    );
    CREATE TABLE ts_raw (
        series_id INTEGER NOT NULL,
        ts REAL NOT NULL,
        value REAL NOT NULL
    );
    CREATE INDEX ts_raw_series_ts ON ts_raw(series_id, ts);
    CREATE TABLE ts_rollup (
        series_id INTEGER NOT NULL,
        resolution INTEGER NOT NULL,
        bucket REAL NOT NULL,
        avg REAL NOT NULL,
        min REAL NOT NULL,
        max REAL NOT NULL,
        sum REAL NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (series_id, resolution, bucket)
    ) WITHOUT ROWID;
    CREATE TABLE ts_rollup_state (
        resolution INTEGER PRIMARY KEY,
        done_until REAL,
        dirty_from REAL
    );
    """,
]
