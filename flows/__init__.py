"""bytewax dataflows: they own every write of derived state (features, models, alerts)."""
