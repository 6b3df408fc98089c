"""The worker's web views: readiness, metrics, stats, the dashboard and the guarded look-ups."""
