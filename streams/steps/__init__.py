"""Pure stream steps: no faust, no kafka imports (the agents in ``streams.agents`` wire them).

Records are the contract's typed records (``contract.records``, generated from the .avsc
files), with ``from_record(dict)`` (typed ``InvalidRecordError`` on bad input) and
``to_record() -> dict``; instants are int microseconds since the epoch (UTC), power kW at
sites and MW at fleet level, > 0 = discharging. ``plain`` holds the bulk inputs' fast paths.

Steps:

- ``setpoint_filter.filter_setpoint(state, SiteSetpoint, now, FilterConfig, SiteLimits|None)
  -> (FilterState, SiteCommand | None, FilterReason)``, one lane per product (state in
  ``filter_state``), and ``tick(state, now, config) -> (FilterState, [SiteCommand])`` (the
  agent's timer writes held-back changes after ``min_interval_s``);
- ``allocator.allocate(request, statuses, now, AllocatorConfig, others=...) -> Allocation``
  (requests from events in ``allocation``: ARM_RESERVE, ORDER changes, SET_POWER) and
  ``reallocate``; every product at once: ``fleet_allocations.apply_request`` / ``refresh``
  over a ``FleetAllocations``; each home's room and each product's availability in
  ``availability``;
- ``fleet_aggregation.FleetAggregator(fleet_id, window_s)`` (``initialize/agg/result``) and
  ``TumblingWindows(aggregator, grace_s)`` (``add``/``add_record``/``flush``); baseline and
  per-product figures in ``expected``;
- ``compliance.add_activation / add_assignment / evaluate(state, FleetState, stale_site_ids,
  ComplianceConfig) -> (ComplianceState, [ComplianceVerdict])``;
- ``deadletter.build_dead_letter(...) -> dict`` (a DeadLetter record).
"""
