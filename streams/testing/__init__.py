"""Test support for the streams (not used by production code; tests and benchmarks import it).

``streams.testing.agents``: run the agents in Faust's test context with in-memory outputs,
and example records for the agents' inputs.
"""
