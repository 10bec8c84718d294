"""``flowerhub ui``: the live operations view for dispatch engineers (issue 19).

Four views, fed live from the Kafka topics (or from a run's archive) and pushed to the page:
**Fleet** (grid frequency, fleet power against target and baseline, per product armed
capacity and delivered response, per-OEM split, the last 15 minutes), **Sites** (every site
with OEM/model, link state, SoC, baseline, delivered, last command result with its measured
power, active faults, last seen; sort, filter, search), **Site** (one home's commanded vs
measured power, baseline, SoC and faults over time) and **Activations** (live compliance
verdicts per activation, the audit reports, browsable).

Layout (thin wiring around a pure core):

- :mod:`~flowerhub.ui.model`, :mod:`~flowerhub.ui.sites`, :mod:`~flowerhub.ui.activations`,
  :mod:`~flowerhub.ui.series`: the view model, folded from decoded events (pure;
  table-driven and hypothesis tests);
- :mod:`~flowerhub.ui.views`: each view's snapshot and deltas since a cursor (pure);
- :mod:`~flowerhub.ui.fold`: Kafka values -> the model (the project codec, column-wise for
  telemetry batches: ``contract.columnar``);
- :mod:`~flowerhub.ui.feed` (Kafka, live) and :mod:`~flowerhub.ui.archive` (Parquet, a
  finished run); :mod:`~flowerhub.ui.reports`: the audit report directories;
- :mod:`~flowerhub.ui.auth` (pure) and :mod:`~flowerhub.ui.server`: aiohttp, server-sent
  events; :mod:`~flowerhub.ui.run`: the wiring ``flowerhub ui`` runs.

Front end (``static/``: plain ES modules, no framework, no bundler): charts are uPlot
(MIT, ~50 kB, canvas; made for streaming time series: a 900-point series redraws in well
under a millisecond, where SVG chart libraries build a DOM node per point) and tables
Tabulator (MIT, no dependencies; renders only the rows in view, so 10,000 sites stay smooth,
with sorting, filtering and live row updates built in). Apache ECharts and AG Grid would do
as well but weigh ten times more for nothing these views need. Both libraries ship
ready-made ES-module builds, so there is no build step: ``make ui`` runs ``npm ci`` in
``web/`` from the committed lock file and the server serves the four files it needs
(:data:`flowerhub.ui.server.VENDOR`); ``node_modules`` is not committed.
"""
