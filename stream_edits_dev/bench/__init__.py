"""Benchmark helpers: a deterministic synthetic claim-line workload and the runners that use it."""
