"""Check state after thresholds, and (with the store) what happened over time."""
