"""Test support of the top layer (imported by tests and benchmarks only)."""
