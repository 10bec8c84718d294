"""Replay: republish a slice of the log into a namespaced copy of the topics, and diff runs.

``plan`` (order, pacing; pure), ``sources`` (archive or Kafka), ``replay`` (the producer
loop), ``diff`` (compare a run on the copy with the original; pure).
"""
