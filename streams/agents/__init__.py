"""The streams worker's services: thin wiring of Kafka around the pure steps (``streams.steps``).

Every worker runs two services (``streams.app.build`` wires them):

- ``site_tasks``: the per-site work of the ``site.telemetry``/``site.setpoints`` partitions
  the group ``<app_id>-sites`` gives this worker: telemetry decode and per-partition windows
  -> slices for the leader (``<app_id>-site-slices``), the setpoint filter -> site.commands,
  its state in a changelog with a warm standby copy (``filter_store``); every output through
  the per-record acknowledged sender (``contract.kafka.delivery``);
- ``leader``: the election (``election``: a sticky assignor over a one-partition topic) and,
  on the one worker elected, ``leading``: FleetStates from the slices, allocation and live
  compliance in event time, restored from Kafka at every takeover, every output in a
  transaction that fences the previous leader.

Each sends what it cannot decode or use to ``deadletter``. ``batching`` computes Kafka's
key partition (murmur2) and batches keyed records for other producers.
"""
