"""Evolution engine: update scan, snapshot, regression tests, staged rollout, judge."""
