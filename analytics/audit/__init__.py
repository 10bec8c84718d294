"""SvK activation audit over the event-log archive or over SvK CSV files (issues 6 and 8).

Both sources end in the same :class:`~analytics.timeseries.Series` per activation, judged by
the one rule layer (:func:`analytics.rules.judge`): ``extract`` finds activations and builds
fleet series from the archive, ``window`` reads an activation's telemetry once (its fleet
power and its sites' traces), ``offenders`` explains per site what went wrong, ``run``
drives both audits, ``report`` writes the verdict table, Markdown/HTML and plots, and
``chain`` fits the dispatch chain (FOPDT) per site and per OEM from command steps.
"""
