"""Thin Faust agents: topic -> decode -> pure step (``streams.steps``) -> encode -> topic.

One module per agent, each with ``register(ctx, book)``; ``streams.app.build`` wires them
(and the telemetry service):

- ``setpoint_filter`` (consumer name ``setpoint-filter``): site.setpoints -> site.commands;
  state in the Faust table ``filter-state`` keyed by site_id, plus a 1 s timer for deferred
  writes; a batch step run by a ``batch_consumer.BatchConsumer`` (group
  ``<app_id>-setpoints``), not a Faust agent: one fleet setpoint fans out to thousands of
  setpoints at once, faster than Faust's per-event delivery takes them;
- ``allocator`` (``allocator``): market.fleet-setpoints, market.activations,
  reserve.assignments -> site.setpoints; one allocation per product in memory, re-split by
  a 1 s timer when the site book changed; (``command-results``) site.command-results ->
  site book;
- ``aggregator`` (consumer name ``fleet-aggregator``): site.telemetry -> fleet.state (1 s
  and 10 s windows in memory) and the site book: a pure batch step, run by
  ``telemetry_service`` (a batched aiokafka consumer started with the app), not a Faust
  agent: Faust's per-event delivery is far slower than the telemetry rate it must take;
- ``compliance`` (``compliance``): fleet.state, market.activations, reserve.assignments ->
  compliance.verdicts; state in the table ``compliance-state`` keyed by fleet_id.

Every agent sends what it cannot decode or use to ``deadletter`` (``base``). The per-worker
view of the fleet's sites is ``sitebook``; its docstring holds the partitioning design and
its scaling limits.
"""
