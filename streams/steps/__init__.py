"""Pure stream steps: no faust, no kafka imports (the agents in ``streams.agents`` wire them).

Records are the contract's typed records (``contract.records``, generated from the .avsc
files), with ``from_record(dict)`` (typed ``InvalidRecordError`` on bad input) and
``to_record() -> dict``; instants are int microseconds since the epoch (UTC), power kW at
sites and MW at fleet level, > 0 = discharging. ``plain`` holds the bulk inputs' fast paths.

Steps:

- ``setpoint_filter.filter_setpoint(state, SiteSetpoint, now, FilterConfig, SiteLimits|None)
  -> (FilterState, SiteCommand | None, FilterReason)`` and ``tick(state, now, config)`` (same
  result shape; the agent's timer writes held-back changes after ``min_interval_s``);
- ``allocator.allocate_fleet_setpoint / allocate_activation / allocate_reserve(event,
  statuses, now, AllocatorConfig) -> Allocation`` and ``reallocate(previous, statuses, now,
  config)``; availability rules in ``availability``;
- ``fleet_aggregation.FleetAggregator(fleet_id, window_s)`` (``initialize/agg/result``) and
  ``TumblingWindows(aggregator, grace_s)`` (``add``/``add_record``/``flush``);
- ``compliance.add_activation / add_assignment / evaluate(state, FleetState, stale_site_ids,
  ComplianceConfig) -> (ComplianceState, [ComplianceVerdict])``;
- ``deadletter.build_dead_letter(...) -> dict`` (a DeadLetter record).
"""
