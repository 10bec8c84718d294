"""SvK activation audit over the event-log archive or over SvK CSV files (issues 6, 8, 14, 19).

Both sources end in the same :class:`~analytics.timeseries.Series` per activation, judged by
the one rule layer (:func:`analytics.rules.judge`) on delivered power
(:mod:`analytics.delivered`): ``extract`` finds activations and builds the fleet frame from
the archive, ``window`` reads an activation's telemetry once (its fleet power, baselines and
armed capacities, and its sites' traces), ``series`` makes the series it is judged on
(canonical form, baseline, the other products' expected responses), ``offenders`` explains
per site what went wrong, ``run`` drives both audits, ``report`` writes the verdict tables,
Markdown and plots, ``page`` the HTML page people read, and ``chain`` fits the dispatch
chain (FOPDT) per site and per OEM from command steps.
"""
