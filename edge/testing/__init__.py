"""Test support for the edge (not used by production code; tests and benchmarks import it).

``edge.testing.harness``: a bridge against simulated inverters in a background thread, with
helpers to produce commands and read the bridge's events over a real broker.
"""
