"""Test support for analytics (not used by production code; tests and benchmarks import it).

- ``analytics.testing.sequences``: synthetic TR25 test signals and a FOPDT response model;
- ``analytics.testing.synthetic``: generated site telemetry as Kafka records;
- ``analytics.testing.scenario``: simulated activation logs written as real archives.
"""
