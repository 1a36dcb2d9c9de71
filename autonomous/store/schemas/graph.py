"""Knowledge graph persistence: nodes and edges with JSON attributes."""

COMPONENT = "graph"

MIGRATIONS = [
    """
    CREATE TABLE graph_nodes (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        label TEXT NOT NULL,
        ts REAL NOT NULL,
        attrs TEXT NOT NULL
    );
    CREATE INDEX graph_nodes_type_ts ON graph_nodes(type, ts);
    CREATE TABLE graph_edges (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        src TEXT NOT NULL,
        dst TEXT NOT NULL,
        rel TEXT NOT NULL,
        ts REAL NOT NULL,
        attrs TEXT NOT NULL
    );
    CREATE INDEX graph_edges_src ON graph_edges(src);
    CREATE INDEX graph_edges_dst ON graph_edges(dst);
    """,
]

# when a node was last seen (a repeated decision touches its chain); retention prunes by it
MIGRATIONS.append(
    """
    ALTER TABLE graph_nodes ADD COLUMN seen REAL;
    UPDATE graph_nodes SET seen = ts;
    CREATE INDEX graph_nodes_seen ON graph_nodes(seen);
    """
)
