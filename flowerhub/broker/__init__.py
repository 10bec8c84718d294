"""The project's own Apache Kafka: KRaft nodes started from Kafka's jars, no Docker needed.

- ``pom.xml``: the jars; `make kafka` copies kafka_2.13 and its runtime deps (plus a log4j2
  binding, so each node logs to ``<data dir>/node-<id>/server.log``) to .cache/kafka/lib.
- ``config``: pure planning (ports, server.properties, JVM flags); ``state``: the state file
  and /proc checks; ``launcher``: start, status, stop, kill/restart one node; ``tls``: the
  throwaway CA and certificates of ``--tls``; ``probe``: produce and read back. Waiting for
  brokers and creating topics: ``contract.kafka.admin``; the CLI: ``flowerhub.cli.broker``.

Kafka version: 4.4.0 (latest 4.x on Maven Central), chosen by test against 3.9.2 (latest
3.x) with faust-streaming 0.15.3 + aiokafka 0.14.0, each run on both versions:

- aiokafka consumer group (2 members split 4 partitions, commit, lag 0): both pass.
- Faust worker with a table + changelog, pre-created topics (``<app>-<table>-changelog``,
  ``<app>-__assignor-__leader``), restart, table rebuilt from the changelog: both pass
  (3 of 3 runs each). Faust's own CreateTopics (``topic_allow_declare=True``, broker
  auto-creation off) also works on both with aiokafka 0.14: the Kafka 4 break reported for
  aiokafka < 0.13 (anchors.md 0.1) does not occur. We still pre-create every topic.
- 3 nodes, acks=all, one node SIGKILLed mid-stream, then restarted: no acknowledged event
  lost, no duplicate (idempotent producer), ISR back to 3, on both.
- Start time and RSS: the same within noise (about 300-350 MiB RSS per node, -Xmx512m).

What broke was Faust, on both versions alike: events arriving while a worker is still
recovering its tables can be processed twice or lost (recovery resumes the stream
partitions before it seeks them to the committed offsets), and Faust is at-least-once
anyway: agents must be idempotent (dedupe by event id / sequence). Nothing favoured 3.9, so
4.4.0 wins: it is the line that gets fixes, and it has dropped the old protocol versions
(KIP-896), so clients that pass here do not lean on APIs a current broker lacks. To try
another version: ``make kafka`` after changing ``kafka.version`` in pom.xml.
"""
