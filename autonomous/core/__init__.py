"""Core types shared by every layer: clock, events, backoff, errors, conditions."""
