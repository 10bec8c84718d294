"""Fold a run of samples into ``TumblingWindows`` at once (pure: numpy, no Faust/Kafka).

:func:`fold_rows` has exactly the effect of calling ``TumblingWindows.add_sample`` for each
row in order (the same FleetStates at the same rows, the same open windows, watermark,
``closed_before`` and ``late_events``), computed on columns:

- the watermark after row i is the running max of event times (with the one before);
- a window closes at the first row where it is open and the watermark reaches its end plus
  the grace; ``closed_before`` is the end of the latest window closed so far;
- a row is late when its window starts before ``closed_before`` as it was before the row.

Lateness depends on which windows closed, which depends on which rows were late; it is
still found in one pass. Take every row as if it were not late: its window would close at
the first row, from its own on, where the watermark reaches the window's end plus grace,
and ``closed_before`` would then be at least that window's end. For a row that is not late
that is what happens (its window is open or opened by it). A late row's window starts
before ``closed_before``; starts and ends are multiples of the window length, so its end
is at most ``closed_before`` already: counting it changes nothing. So the running maximum
of those ends, over all rows, is ``closed_before`` at every row, and the late rows follow.
(A ``closed_before`` restored from elsewhere that is not a multiple of the window length
voids the argument: such a run takes ``add_sample`` row by row.) Late rows only move the
watermark and count; the others are folded: each (window, site)'s last sample by sorting.

A window that opens and closes within the run is aggregated from columns
(``FleetAggregator.result_of_columns``); a window that was open before or stays open after
is kept as the usual ``dict[site, SiteSample]``, with only each site's last sample of the
run materialised.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from streams.steps.fleet_aggregation import R, SiteSample, TumblingWindows, WindowColumns
from streams.steps.telemetry_columns import Rows, SampleColumns

_NO_TIME = np.iinfo(np.int64).min

#: (row at which it closed, window start, result)
Closed = list[tuple[int, int, R]]


def fold_rows(windows: TumblingWindows[R], samples: SampleColumns, rows: Rows) -> Closed[R]:
    """``windows.add_sample`` of every row of ``rows`` in order; the closed windows' results
    with the row that closed each (oldest window first at a row)."""
    out: Closed[R] = []
    if not len(rows):
        return out
    if windows.closed_before is not None and windows.closed_before % windows.size:
        _one_by_one(windows, samples, rows, out)  # not a window boundary (module doc)
        return out
    size, grace = windows.size, windows.grace
    n = len(rows)
    times = samples.event_time[rows]
    mark = np.maximum.accumulate(times)
    if windows.watermark is not None:
        mark = np.maximum(mark, windows.watermark)
    starts = times - times % size
    # the first row at which each row's window could close (n: not in this run)
    closes = np.maximum(np.arange(n), np.searchsorted(mark, starts + size + grace))
    opened = np.array(sorted(windows.open), np.int64)
    opened_close = np.searchsorted(mark, opened + size + grace)
    ends_at = np.full(n + 1, _NO_TIME, np.int64)
    np.maximum.at(ends_at, closes, starts + size)
    np.maximum.at(ends_at, opened_close, opened + size)
    closed_before = np.maximum.accumulate(ends_at[:n])
    before = _NO_TIME if windows.closed_before is None else windows.closed_before
    closed_before = np.maximum(closed_before, before)
    before_row = np.empty(n, np.int64)
    before_row[0] = before
    before_row[1:] = closed_before[:-1]
    timely = starts >= before_row
    kept = np.flatnonzero(timely)
    out = _fold_timely(
        windows, samples, rows, kept=kept, starts=starts[kept], closes=closes[kept], mark=mark
    )
    windows.late_events += n - len(kept)
    windows.watermark = int(mark[-1])
    if closed_before[-1] != _NO_TIME:
        windows.closed_before = int(closed_before[-1])
    windows.reindex()
    return out


def _one_by_one(
    windows: TumblingWindows[R], samples: SampleColumns, rows: Rows, out: Closed[R]
) -> None:
    names = samples.site_names
    for row, site, sample in zip(
        rows.tolist(), samples.site[rows].tolist(), samples.samples(rows), strict=True
    ):
        out.extend((row, s.window_start, s) for s in windows.add_sample(names[site], sample))


def _fold_timely(
    windows: TumblingWindows[R],
    samples: SampleColumns,
    rows: Rows,
    *,
    kept: Rows,
    starts: npt.NDArray[np.int64],
    closes: npt.NDArray[np.intp],
    mark: npt.NDArray[np.int64],
) -> Closed[R]:
    """Fold the rows at positions ``kept`` of ``rows`` (the rows that are not late;
    ``starts``, ``closes``: theirs; ``mark``: the watermark after each row of ``rows``)."""
    n = len(rows)  # as a closing position: not in this run
    size, grace = windows.size, windows.grace
    aggregator = windows.aggregator
    out: Closed[R] = []
    closing: list[tuple[int, int, R | None]] = []
    if len(kept):
        taken = rows[kept]
        times = samples.event_time[taken]
        sites = samples.site[taken]
        # each (window, site)'s last sample: the newest event time, on a tie the later row
        order = np.lexsort((kept, times, sites, starts))
        s_starts, s_sites = starts[order], sites[order]
        heads_mask = np.ones(len(kept), np.bool_)
        heads_mask[1:] = s_starts[1:] != s_starts[:-1]
        last = np.ones(len(kept), np.bool_)
        last[:-1] = heads_mask[1:] | (s_sites[1:] != s_sites[:-1])
        winners = order[last]  # indexes into kept, grouped by window start (ascending)
        groups = np.split(winners, np.flatnonzero(np.diff(starts[winners])) + 1)
        # the position at which each window closes: the first of its rows' ``closes``
        first_close = np.minimum.reduceat(closes[order], np.flatnonzero(heads_mask))
        for group, close in zip(groups, first_close.tolist(), strict=True):
            start = int(starts[group[0]])
            state = windows.open.get(start)
            group_rows = taken[group]
            if state is None and close < n:  # opened and closed within the run: columns
                result = aggregator.result_of_columns(_columns(samples, group_rows), start)
                closing.append((close, start, result))
                continue
            if state is None:
                state = windows.open[start] = {}
            _merge(state, samples, group_rows)
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
        done = ready if ready is not None else aggregator.result(state_now, start)
        out.append((int(rows[close]), start, done))
    return out


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
        samples.baseline_kw[rows],
        samples.has_baseline[rows],
        None if samples.armed is None else samples.armed[rows],
        None if samples.orders is None else samples.orders[rows],
        [samples.site_names[c] for c in samples.site[rows].tolist()],
        samples.max_discharge_kw[rows],
        samples.max_charge_kw[rows],
        samples.event_time[rows],
    )


def _merge(state: dict[str, SiteSample], samples: SampleColumns, rows: Rows) -> None:
    """Each site's last sample of the run into an open window (newer or equal time wins)."""
    names = samples.site_names
    for site, sample in zip(samples.site[rows].tolist(), samples.samples(rows), strict=True):
        name = names[site]
        prev = state.get(name)
        if prev is None or sample.event_time >= prev.event_time:
            state[name] = sample
