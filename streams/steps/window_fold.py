"""Fold a run of samples into ``TumblingWindows`` at once (pure: numpy, no Faust/Kafka).

:func:`fold_rows` has exactly the effect of calling ``TumblingWindows.add_sample`` for each
row in order (the same FleetStates at the same rows, the same open windows, watermark,
``closed_before`` and ``late_events``), computed on columns:

- the watermark after row i is the running max of event times (with the one before);
- a window closes at the first row where it is open and the watermark reaches its end plus
  the grace; ``closed_before`` is the end of the latest window closed so far;
- a row is late when its window starts before ``closed_before`` as it was before the row.

Lateness depends on which windows closed, which depends on which rows were late. So the
fold assumes no row is late, derives ``closed_before`` at every row from that, and checks:
up to the first row found late the assumption held (every window was opened by rows
before it), so that prefix is folded at once; the late row takes ``add_sample`` (it still
moves the watermark) and the rest is folded again. After ``MAX_LATE_RESTARTS`` late rows
in one call the remaining rows take ``add_sample`` one by one.

A window that opens and closes within the run is aggregated from columns
(``FleetAggregator.result_of_columns``, each site's last sample picked by sorting); a window
that was open before or stays open after is kept as the usual ``dict[site, SiteSample]``,
with only each site's last sample of the run materialised.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from streams.steps.fleet_aggregation import SiteSample, TumblingWindows, WindowColumns
from streams.steps.records_fleet import FleetState
from streams.steps.telemetry_columns import Rows, SampleColumns

MAX_LATE_RESTARTS = 8
_NO_TIME = np.iinfo(np.int64).min

Closed = list[tuple[int, int, FleetState]]  # (row at which it closed, window start, state)


def fold_rows(windows: TumblingWindows, samples: SampleColumns, rows: Rows) -> Closed:
    """``windows.add_sample`` of every row of ``rows`` in order; the closed windows' states
    with the row that closed each (oldest window first at a row)."""
    out: Closed = []
    restarts = 0
    while len(rows):
        late = _fold_until_late(windows, samples, rows, out)
        if late is None:
            break
        if restarts >= MAX_LATE_RESTARTS:
            _one_by_one(windows, samples, rows[late:], out)
            break
        restarts += 1
        _one_by_one(windows, samples, rows[late : late + 1], out)
        rows = rows[late + 1 :]
    return out


def _one_by_one(windows: TumblingWindows, samples: SampleColumns, rows: Rows, out: Closed) -> None:
    names = samples.site_names
    for row, site, sample in zip(
        rows.tolist(), samples.site[rows].tolist(), samples.samples(rows), strict=True
    ):
        out.extend((row, s.window_start, s) for s in windows.add_sample(names[site], sample))


def _fold_until_late(
    windows: TumblingWindows, samples: SampleColumns, rows: Rows, out: Closed
) -> int | None:
    """Fold the rows before the first late one; its position in ``rows`` (None: none)."""
    size, grace = windows.size, windows.grace
    n = len(rows)
    times = samples.event_time[rows]
    mark = np.maximum.accumulate(times)
    if windows.watermark is not None:
        mark = np.maximum(mark, windows.watermark)
    starts = times - times % size
    # the first row at which each row's window can close (n: not in this run)
    closes = np.maximum(np.arange(n), np.searchsorted(mark, starts + size + grace))
    opened = np.array(sorted(windows.open), np.int64)
    opened_close = np.searchsorted(mark, opened + size + grace)
    ends_at = np.full(n + 1, _NO_TIME, np.int64)
    np.maximum.at(ends_at, closes, starts + size)
    np.maximum.at(ends_at, opened_close, opened + size)
    closed_before = np.maximum.accumulate(ends_at[:n])
    if windows.closed_before is not None:
        closed_before = np.maximum(closed_before, windows.closed_before)
    before_row = np.empty(n, np.int64)
    before_row[0] = _NO_TIME if windows.closed_before is None else windows.closed_before
    before_row[1:] = closed_before[:-1]
    late = starts < before_row
    first_late = int(np.argmax(late)) if late.any() else n
    if first_late:
        prefix = slice(0, first_late)
        _fold_prefix(
            windows,
            samples,
            rows[prefix],
            starts=starts[prefix],
            closes=closes[prefix],
            mark=mark[prefix],
            out=out,
        )
        windows.watermark = int(mark[first_late - 1])
        if windows.closed_before is not None or closed_before[first_late - 1] != _NO_TIME:
            windows.closed_before = int(closed_before[first_late - 1])
    return first_late if first_late < n else None


def _fold_prefix(
    windows: TumblingWindows,
    samples: SampleColumns,
    rows: Rows,
    *,
    starts: npt.NDArray[np.int64],
    closes: npt.NDArray[np.intp],
    mark: npt.NDArray[np.int64],
    out: Closed,
) -> None:
    """Fold rows none of which is late (``closes``: each row's window's first possible
    closing row, ``mark``: the watermark after each row)."""
    n = len(rows)
    size, grace = windows.size, windows.grace
    times = samples.event_time[rows]
    sites = samples.site[rows]
    # each (window, site)'s last sample: the newest event time, on a tie the later row
    order = np.lexsort((np.arange(n), times, sites, starts))
    s_starts, s_sites = starts[order], sites[order]
    last = np.ones(n, np.bool_)
    last[:-1] = (s_starts[1:] != s_starts[:-1]) | (s_sites[1:] != s_sites[:-1])
    winners = order[last]  # positions, grouped by window start (ascending)
    w_starts = starts[winners]
    bounds = np.flatnonzero(np.diff(w_starts)) + 1
    groups = np.split(winners, bounds)
    # the row at which each window closes: the first of its rows' ``closes`` (n: stays open)
    heads = np.flatnonzero(np.r_[True, s_starts[1:] != s_starts[:-1]])
    first_close = np.minimum.reduceat(np.minimum(closes[order], n), heads)
    closing: list[tuple[int, int, FleetState | None]] = []
    for group, close in zip(groups, first_close.tolist(), strict=True):
        start = int(starts[group[0]])
        state = windows.open.get(start)
        if state is None and close < n:  # opened and closed within the run: from columns
            result = windows.aggregator.result_of_columns(_columns(samples, rows[group]), start)
            closing.append((close, start, result))
            continue
        if state is None:
            state = windows.open[start] = {}
        _merge(state, samples, rows[group])
        if close < n:
            closing.append((close, start, None))
    # windows open before the run that the run closed without adding to them
    touched = {c[1] for c in closing}
    for start in sorted(windows.open):
        if start in touched:
            continue
        at = int(np.searchsorted(mark, start + size + grace))
        if at < n:
            closing.append((at, start, None))
    closing.sort(key=lambda c: (c[0], c[1]))
    for close, start, ready in closing:
        state_now = windows.open.pop(start, {})  # there: merged above or open before
        done = ready if ready is not None else windows.aggregator.result(state_now, start)
        out.append((int(rows[close]), start, done))
    windows.reindex()


def _columns(samples: SampleColumns, rows: Rows) -> WindowColumns:
    return WindowColumns(
        samples.power_kw[rows],
        samples.headroom_up_kw[rows],
        samples.headroom_down_kw[rows],
        samples.faulted[rows],
        samples.oem[rows],
        samples.oem_names,
        samples.frequency_hz[rows],
        samples.has_frequency[rows],
    )


def _merge(state: dict[str, SiteSample], samples: SampleColumns, rows: Rows) -> None:
    """Each site's last sample of the run into an open window (newer or equal time wins)."""
    names = samples.site_names
    for site, sample in zip(samples.site[rows].tolist(), samples.samples(rows), strict=True):
        name = names[site]
        prev = state.get(name)
        if prev is None or sample.event_time >= prev.event_time:
            state[name] = sample
