"""Benchmarks of the service against the raw SQL it runs and against tipg: `python -m benchmarks.run`."""
