"""The project's own Apache Kafka: KRaft nodes started from Kafka's jars, no Docker needed.

- ``pom.xml``: the jars (`make kafka` copies kafka_2.13 and its runtime deps to .cache/kafka/lib).
- ``config``: pure planning (ports, server.properties, JVM flags), ``state``: the state file
  and /proc checks, ``launcher``: start/stop/status/kill/restart, ``admin``: wait for brokers
  and pre-create topics, ``probe``: produce and read back, ``cli``: `flowerhub broker ...`.

Kafka version: being chosen by test (4.4.0 vs 3.9.2); see the report.
"""
