"""Test support for the contract (not used by production code; needs the ``dev`` extra).

``contract.testing.strategies``: hypothesis strategies that draw valid records from a schema.
"""
