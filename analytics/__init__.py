"""Analytics: SvK audit rules, time series, SvK CSV format, frequency response, archive, replay.

The pure rule layer (``analytics.timeseries``, ``analytics.rules``, ``analytics.freqresp``,
``analytics.svkcsv``, ``analytics.verdicts``) imports neither Kafka nor Faust.
"""
