"""Learning subsystem: the knowledge graph of decisions (and, later, pattern analysis)."""
