"""One activation window of site telemetry, read once for the fleet series and the offenders.

An activation is judged on its window's fleet power (per bucket, each site's last sample
held at most ``hold_s``, summed) and its offenders on each site's own samples in the same
window. Both come from one read, :func:`read_window`: two DuckDB queries over the window's
row groups only (the scan skips every other row group by its event-time statistics):

1. per site (Kafka key = site id, key order): its OEM and sample count in the window, and
   its last sample (time, power) in the ``lookback`` before it (the sites "seen shortly
   before" that the offenders report as STALE when they fall silent; the power is held
   into the window's first buckets);
2. every sample's site, event time, battery power and frequency as numpy columns (the
   site is numbered from DuckDB's ``hash(key)`` in numpy: no join, no SQL sort; a join
   numbers them if two sites' hashes collide).

The samples are put in (site, event time) order by numpy (a stable sort keeps the log's
order among samples of one site with the same event time). :func:`window_fleet_frame`
then gives the same frame as :func:`analytics.audit.extract.fleet_frame` computes in SQL
(``arg_max`` per site and bucket, held by a range join): per bucket with a sample, the sum
over sites of each site's last sample before the bucket's end if it is at most ``hold_s``
older than the bucket's start (sample-and-hold: a 1 Hz sample landing late leaves its
bucket empty, and the meter did not stop delivering; older -> the site counts 0, and the
offenders report it), the mean of every sample's frequency (NULL frequencies ignored; NaN
where a bucket has none) and the sample count. Samples before the window count from
``lo - hold_s`` on. ``hold_s=0``: each site's last sample in the bucket only. Among
samples of one site with equal event times, the one read last (archive order) is the
site's last sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np

from analytics.audit.extract import (
    BASELINE,
    EXTRA_FIELDS,
    HOLD_S,
    PRE_S,
    Activation,
    AuditInputError,
    FleetFrame,
    hold_us_of,
    to_us,
    typed_extra_fields,
)
from analytics.delivered import ARMED_FIELDS
from analytics.timeseries import FloatArray
from contract.enums import Product

LOOKBACK_S = 900.0  # a site seen this long before a window and silent in it is STALE
_NO_SAMPLE = np.iinfo(np.int64).min
_SPARSE = 4  # more buckets than this many per sample: number them by np.unique


@dataclass(frozen=True)
class WindowSamples:
    """The telemetry of [lo_us, hi_us) and the sites seen from ``back_us`` (see module doc).

    ``sites``: every site (Kafka key, decoded) with a sample in [back_us, hi_us), in key
    order; ``oems``: an OEM the site reported in the window (None: no sample in it);
    ``last_before_us``: its last sample time in [back_us, lo_us) (int64 minimum: none),
    ``last_before_kw`` that sample's battery power (NaN: none; held into the first buckets).
    The samples (``site`` numbers into ``sites``) are in (site, event time) order.
    ``extra``: per sample, the site's ``baseline_kw`` (NaN: not reported) and the
    ``armed_*_kw`` / ``order_*_kw`` fields of :data:`EXTRA_FIELDS` that some site reports
    (:data:`analytics.delivered.ARMED_FIELDS`); ``extra_before``: the same fields of each
    site's last sample in [``extra_from_us``, lo) (held into the window like its power).
    """

    lo_us: int
    hi_us: int
    back_us: int
    sites: tuple[str, ...]
    oems: tuple[str | None, ...]
    last_before_us: np.ndarray
    last_before_kw: FloatArray
    site: np.ndarray
    t_us: np.ndarray
    power_kw: FloatArray
    freq_hz: FloatArray
    extra: Mapping[str, FloatArray] = field(default_factory=dict)
    extra_before: Mapping[str, FloatArray] = field(default_factory=dict)
    extra_from_us: int = 0  # ``extra_before`` covers last samples at or after this

    @property
    def armed_kw(self) -> dict[Product, FloatArray]:
        """Per sample, each product armed (or ordered) somewhere in the window, kW."""
        return {p: self.extra[name] for p, name in ARMED_FIELDS.items() if name in self.extra}

    def baseline_sites(self, hold_us: int = 0) -> int:
        """How many sites reported a baseline in the window, or in their last sample before
        it if that is at most ``hold_us`` before it (a sample the window's first buckets
        hold)."""
        b = self.extra.get(BASELINE)
        if b is None:
            return 0
        reported = np.bincount(self.site[~np.isnan(b)], minlength=len(self.sites)) > 0
        before = self.extra_before.get(BASELINE)
        if before is not None:
            reported |= (self.last_before_us >= self.lo_us - hold_us) & ~np.isnan(before)
        return int(np.count_nonzero(reported))

    def covers(self, t0_us: int, t1_us: int, lookback_s: float = LOOKBACK_S) -> bool:
        """Whether [t0, t1] and the ``lookback_s`` before it are inside what was read."""
        return (
            self.lo_us <= t0_us
            and t1_us < self.hi_us
            and self.back_us <= t0_us - int(lookback_s * 1e6)
        )


def window_bounds(
    bucket_ms: int,
    activation: Activation,
    *,
    since_us: int | None = None,
    until_us: int | None = None,
    pre_s: float = PRE_S,
) -> tuple[int, int]:
    """[lo, hi) in µs: the buckets :func:`analytics.audit.extract.fleet_series` takes.

    Whole buckets from the one holding ``start - pre_s`` to the one holding ``end`` (bucket
    edges are multiples of the bucket from the epoch, as in a frame of the whole range),
    within [since, until).
    """
    b = int(bucket_ms) * 1000
    if b < 1000:
        raise AuditInputError(f"fleet series bucket must be >= 1 ms, got {bucket_ms} ms")
    lo = (to_us(activation.start) - int(pre_s * 1e6)) // b * b
    hi = to_us(activation.end) + b
    lo = lo if since_us is None else max(lo, since_us)
    hi = hi if until_us is None else min(hi, until_us)
    return lo, hi


def read_window(
    con: duckdb.DuckDBPyConnection,
    lo_us: int,
    hi_us: int,
    lookback_s: float = LOOKBACK_S,
    hold_s: float = HOLD_S,
) -> WindowSamples:
    """The samples of [lo, hi) and the sites seen from ``lookback_s`` before (module doc).

    Reads the view ``audit_site_telemetry`` (:func:`analytics.audit.extract.scope_views`).
    Of the :data:`~analytics.audit.extract.EXTRA_FIELDS` only those some site reports in
    [lo - hold_s, hi) are read (a baseline, a capacity other than 0): an archive written
    before baselines costs one aggregate more. Their values in each site's last sample
    before the window come with the samples of [lo - hold_s, lo) (what a hold of
    ``hold_s`` takes), read with the window's.
    """
    if hi_us <= lo_us:
        raise AuditInputError(f"empty telemetry window [{lo_us}, {hi_us}) µs")
    if lookback_s < 0:
        raise AuditInputError(f"lookback must be >= 0 s, got {lookback_s}")
    hold_us = hold_us_of(hold_s)
    back = lo_us - int(lookback_s * 1e6)
    rows = con.execute(
        "SELECT decode(key), hash(key), "
        "any_value(oem) FILTER (WHERE event_time >= make_timestamp($2)), "
        "count(*) FILTER (WHERE event_time >= make_timestamp($2)), "
        "epoch_us(max(event_time) FILTER (WHERE event_time < make_timestamp($2))), "
        "arg_max(battery_power_kw, event_time) FILTER (WHERE event_time < make_timestamp($2)) "
        "FROM audit_site_telemetry "
        "WHERE event_time >= make_timestamp($1) AND event_time < make_timestamp($3) "
        "GROUP BY key ORDER BY key",
        [back, lo_us, hi_us],
    ).fetchall()
    fields = reported_fields(con, lo_us - hold_us, hi_us)
    counts = np.array([int(r[3]) for r in rows], dtype=np.int64)
    # with extra fields, the samples of [lo - hold, lo) come too: their last one per site is
    # what the hold carries into the window (one query, not two); any site seen may have one
    start = lo_us - hold_us if fields else lo_us
    active = np.arange(len(rows)) if fields else np.flatnonzero(counts > 0)
    hashes = np.array([int(rows[k][1]) for k in active], dtype=np.uint64)
    by_hash = hashes if np.unique(hashes).size == hashes.size else None
    site, us, kw, hz, extra = site_samples(
        con, start, hi_us, back, active=active, hashes=by_hash, fields=fields
    )
    inside = int(np.count_nonzero(us >= lo_us)) if fields else site.size
    if inside != int(counts.sum()):
        raise AuditInputError(
            f"the archive changed while the window [{lo_us}, {hi_us}) µs was read: run again"
        )
    order = _site_time_order(site, us, len(rows))
    extra_before = _last_before(site, us, extra, order=order, lo_us=lo_us, sites=len(rows))
    if fields:
        order = order[us[order] >= lo_us]
    return WindowSamples(
        lo_us=lo_us,
        hi_us=hi_us,
        back_us=back,
        sites=tuple(str(r[0]) for r in rows),
        oems=tuple(None if r[2] is None else str(r[2]) for r in rows),
        last_before_us=np.array(
            [_NO_SAMPLE if r[4] is None else int(r[4]) for r in rows], dtype=np.int64
        ),
        last_before_kw=np.array(
            [np.nan if r[5] is None else float(r[5]) for r in rows], dtype=np.float64
        ),
        site=site[order],
        t_us=us[order],
        power_kw=kw[order],
        freq_hz=hz[order],
        extra={name: values[order] for name, values in extra.items()},
        extra_before=extra_before,
        extra_from_us=start,
    )


def _last_before(
    site: np.ndarray,
    us: np.ndarray,
    extra: Mapping[str, FloatArray],
    *,
    order: np.ndarray,
    lo_us: int,
    sites: int,
) -> dict[str, FloatArray]:
    """Per site the ``extra`` values of its last sample before ``lo_us`` among the samples
    (``order``: their (site, time) order); NaN (baseline) or 0 (capacity) where none."""
    out = {name: np.full(sites, _null_as(name)) for name in extra}
    if not extra:
        return out
    s, before = site[order], us[order] < lo_us
    last = before.copy()  # a site's samples before lo come first: the last is followed by
    last[:-1] &= ~(before[1:] & (s[1:] == s[:-1]))  # one in the window or another site's
    at = order[last]
    for name, values in extra.items():
        out[name][site[at]] = values[at]
    return out


def reported_fields(con: duckdb.DuckDBPyConnection, lo_us: int, hi_us: int) -> list[str]:
    """The :data:`~analytics.audit.extract.EXTRA_FIELDS` some sample in [lo, hi) reports: a
    baseline that is not NULL, a capacity other than 0 (one aggregate over the range)."""
    candidates = typed_extra_fields(con)
    if not candidates:  # telemetry written before baselines: nothing to look for
        return []
    tests = ", ".join(
        f"bool_or({name} IS NOT NULL)" if name == BASELINE else f"bool_or({name} <> 0)"
        for name in candidates
    )
    row = con.execute(
        f"SELECT {tests} FROM audit_site_telemetry "  # noqa: S608  # fixed field names
        "WHERE event_time >= make_timestamp($1) AND event_time < make_timestamp($2)",
        [lo_us, hi_us],
    ).fetchone()
    return [name for name, found in zip(candidates, row or (), strict=False) if found]


def site_samples(
    con: duckdb.DuckDBPyConnection,
    lo_us: int,
    hi_us: int,
    back_us: int,
    *,
    active: np.ndarray,
    hashes: np.ndarray | None,
    fields: Sequence[str] = (),
) -> tuple[np.ndarray, np.ndarray, FloatArray, FloatArray, dict[str, FloatArray]]:
    """(site number, µs, kW, Hz, extra) of every sample in [lo, hi), in the log's order.

    Sites are numbered in key order over every key seen in [back, hi). ``active``: the
    numbers of the sites with samples in [lo, hi); ``hashes``: their distinct DuckDB
    ``hash(key)`` (each sample's hash is mapped to its number in numpy), or None to number
    the samples by a join on the key instead (two sites' hashes collide). A NULL frequency
    is NaN; a NULL battery power is an :class:`AuditInputError` (the schema forbids it).
    ``extra``: each of ``fields`` (of :data:`EXTRA_FIELDS`) per sample (a NULL baseline
    NaN, a NULL capacity 0).
    """
    if not set(fields) <= set(EXTRA_FIELDS):
        raise AuditInputError(f"not a SiteTelemetry value the audit sums: {sorted(fields)}")
    values = "epoch_us(event_time) AS u, battery_power_kw AS p, frequency_hz AS f" + "".join(
        f", coalesce({name}, {_null_sql(name)}) AS x{k}" for k, name in enumerate(fields)
    )
    if hashes is not None:
        cols = con.execute(
            f"SELECT hash(key) AS h, {values} FROM audit_site_telemetry "  # noqa: S608  # fixed text
            "WHERE event_time >= make_timestamp($1) AND event_time < make_timestamp($2)",
            [lo_us, hi_us],
        ).fetchnumpy()
        h = np.asarray(cols["h"], dtype=np.uint64)
        found = hash_positions(hashes, h)
        if h.size and (hashes.size == 0 or np.any(hashes[found] != h)):
            raise AuditInputError(
                f"the archive changed while the window [{lo_us}, {hi_us}) µs was read: run again"
            )
        site = np.asarray(active, dtype=np.int64)[found] if h.size else h.astype(np.int64)
    else:
        cols = con.execute(
            "WITH k AS (SELECT key, row_number() OVER (ORDER BY key) - 1 AS idx "  # noqa: S608  # fixed text
            "  FROM (SELECT DISTINCT key FROM audit_site_telemetry "
            "        WHERE event_time >= make_timestamp($1) AND event_time < make_timestamp($3))) "
            f"SELECT k.idx AS idx, {values} FROM audit_site_telemetry JOIN k USING (key) "
            "WHERE event_time >= make_timestamp($2) AND event_time < make_timestamp($3)",
            [back_us, lo_us, hi_us],
        ).fetchnumpy()
        site = np.asarray(cols["idx"], dtype=np.int64)
    power = cols["p"]
    if np.ma.is_masked(power):
        raise AuditInputError(
            f"site telemetry without battery_power_kw in [{lo_us}, {hi_us}) µs: "
            "the archive does not follow SiteTelemetry.avsc"
        )
    freq = np.ma.filled(np.ma.asarray(cols["f"], dtype=np.float64), np.nan)
    extra = {
        name: np.asarray(np.ma.getdata(cols[f"x{k}"]), dtype=np.float64)
        for k, name in enumerate(fields)
    }
    return (
        site,
        np.asarray(cols["u"], dtype=np.int64),
        np.asarray(np.ma.getdata(power), dtype=np.float64),
        np.asarray(freq, dtype=np.float64),
        extra,
    )


_TABLE_BITS = 20  # a 4 MB table: 1,300 hashes' slots are all distinct for most bit windows


def hash_positions(hashes: np.ndarray, h: np.ndarray) -> np.ndarray:
    """For each of ``h`` its position in ``hashes`` (distinct ``uint64``), if it is there
    (the caller checks ``hashes[pos] == h``; a value not among them gets any position).

    A direct table over a window of the hash's bits in which every one of ``hashes`` has
    a slot of its own: one gather per sample instead of a binary search (5x faster for a
    1.6 M-sample window of 1,300 sites); a binary search where no window has that.
    """
    size = 1 << _TABLE_BITS
    if hashes.size and hashes.size * 8 <= size:
        mask = np.uint64(size - 1)
        for shift in range(0, 64 - _TABLE_BITS + 1, 4):
            slots = ((hashes >> np.uint64(shift)) & mask).astype(np.int64)
            if np.unique(slots).size == slots.size:
                table = np.zeros(size, dtype=np.int64)
                table[slots] = np.arange(hashes.size)
                return np.asarray(table[((h >> np.uint64(shift)) & mask).astype(np.int64)])
    by_hash = np.argsort(hashes)
    found = np.minimum(np.searchsorted(hashes[by_hash], h), max(hashes.size - 1, 0))
    return np.asarray(by_hash[found] if hashes.size else found)


def _zero_nan(values: FloatArray) -> FloatArray:
    """``values`` with NaN (a baseline not reported) as 0, for a sum."""
    nan = np.isnan(values)
    return values if not nan.any() else np.where(nan, 0.0, values)


def _null_as(name: str) -> float:
    """What a NULL of ``name`` reads as: a baseline not reported (NaN), a capacity 0."""
    return np.nan if name == BASELINE else 0.0


def _null_sql(name: str) -> str:
    return "CAST('NaN' AS DOUBLE)" if name == BASELINE else "0.0"


def _site_time_order(site: np.ndarray, us: np.ndarray, sites: int) -> np.ndarray:
    """The order that puts the samples in (site, time) order, the log's order kept among
    equal times.

    The log holds each site's samples in time order almost always: a stable sort by site
    alone (a radix sort on small integers) then suffices; otherwise a stable sort by
    (site, time).
    """
    narrow = np.int16 if sites < 2**15 else np.int32
    order = np.argsort(site.astype(narrow), kind="stable")
    site, us = site[order], us[order]
    back_in_time = (site[1:] == site[:-1]) & (us[1:] < us[:-1])
    if np.any(back_in_time):
        order = order[np.lexsort((us, site))]  # stable: equal times keep the order they had
    return np.asarray(order, dtype=np.int64)


def window_fleet_frame(window: WindowSamples, bucket_ms: int, hold_s: float = HOLD_S) -> FleetFrame:
    """Per-bucket fleet power (each site's held last sample), mean frequency, samples.

    The buckets are those with a sample in the window. A site's power in bucket [s, s + b)
    is its last sample before s + b if that sample is at or after s - ``hold_s``
    (:data:`HOLD_S`; the module doc); 0 otherwise. The site's last sample before the
    window (``last_before_kw``) is held into its first buckets the same way. The same hold
    sums the sites' baselines (a baseline not reported counts 0; None when no site reported
    one) and each product's armed capacity or order (``FleetFrame.armed_mw``).
    """
    b = int(bucket_ms) * 1000
    if b < 1000:
        raise AuditInputError(f"fleet series bucket must be >= 1 ms, got {bucket_ms} ms")
    hold_us = hold_us_of(hold_s)
    if window.lo_us - window.back_us < hold_us:
        raise AuditInputError(
            f"hold {hold_s} s is longer than the window's lookback "
            f"{(window.lo_us - window.back_us) / 1e6} s"
        )
    n = window.t_us.size
    if n == 0:
        raise AuditInputError("no site telemetry in the log for the requested time range")
    bucket = window.t_us // b
    first = window.lo_us // b
    span = (window.hi_us - 1) // b - first + 1
    if span <= _SPARSE * n:
        rel = bucket - first
        present = np.flatnonzero(np.bincount(rel, minlength=span))
        index = np.full(span, -1, dtype=np.int64)
        index[present] = np.arange(present.size)
        inv = index[rel]
        buckets = present + first
    else:
        buckets, inv = np.unique(bucket, return_inverse=True)
    m = buckets.size
    last = np.ones(n, dtype=bool)
    last[:-1] = (window.site[1:] != window.site[:-1]) | (bucket[1:] != bucket[:-1])
    names = list(window.extra)
    columns = [window.power_kw, *(_zero_nan(window.extra[k]) for k in names)]
    if hold_us == 0:
        inv_last = inv[last]
        sums = [
            np.asarray(np.bincount(inv_last, weights=c[last], minlength=m), dtype=np.float64)
            for c in columns
        ]
    else:
        if names and window.lo_us - hold_us < window.extra_from_us:
            raise AuditInputError(
                f"hold {hold_s} s is longer than the window was read for "
                f"({(window.lo_us - window.extra_from_us) / 1e6} s)"
            )
        befores = [window.last_before_kw]
        befores += [_zero_nan(window.extra_before[k]) for k in names]
        sums = _held_sums(
            window,
            b,
            list(zip(columns, befores, strict=True)),
            hold_us=hold_us,
            bucket=bucket,
            last=last,
            buckets=buckets,
            inv=inv,
        )
    totals = dict(zip(names, sums[1:], strict=True))
    has_f = ~np.isnan(window.freq_hz)
    f_sum = np.bincount(inv[has_f], weights=window.freq_hz[has_f], minlength=m)
    f_n = np.bincount(inv[has_f], minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        freq = f_sum / f_n  # NaN where no sample of the bucket has a frequency
    reported = window.baseline_sites(hold_us)
    return FleetFrame(
        bucket_us=b,
        t_us=np.asarray(buckets * b, dtype=np.int64),
        power_mw=np.asarray(sums[0] / 1000.0, dtype=np.float64),
        freq_hz=np.asarray(freq, dtype=np.float64),
        samples=np.bincount(inv, minlength=m).astype(np.int64),
        baseline_mw=totals[BASELINE] / 1000.0 if reported else None,
        armed_mw={
            p: totals[name] / 1000.0
            for p, name in ARMED_FIELDS.items()
            if name in totals and np.any(totals[name] != 0.0)
        },
        baseline_sites=reported,
        sites=sum(oem is not None for oem in window.oems),
    )


def _held_sums(
    window: WindowSamples,
    b: int,
    columns: list[tuple[FloatArray, FloatArray]],
    *,
    hold_us: int,
    bucket: np.ndarray,
    last: np.ndarray,
    buckets: np.ndarray,
    inv: np.ndarray,
) -> list[FloatArray]:
    """Sum per output bucket of each site's held sample (see :func:`window_fleet_frame`),
    for each (per-sample value, per-site value before the window) of ``columns``.

    Each site's last sample of a bucket k (and its last sample before the window, if at or
    after lo - hold) holds from k to the bucket before the site's next sample, but not past
    the last bucket starting within ``hold_us`` of it; only the output ``buckets`` (sorted)
    take it. A sample counts in its own bucket (one bincount, as without hold); only the
    few samples followed by a missed bucket are spread further. One site's hold ranges do
    not overlap: at most one value per (site, output bucket). The ranges are found once
    and every column is summed over them.
    """
    every = bool(last.all())  # one sample per site and bucket: no gather needed
    rows = np.arange(last.size) if every else np.flatnonzero(last)
    site, t, k = (
        (window.site, window.t_us, bucket)
        if every
        else (
            window.site[rows],
            window.t_us[rows],
            bucket[rows],
        )
    )
    inv_last = inv if every else inv[rows]
    never = np.iinfo(np.int64).max
    k_next = np.full(site.size, never, dtype=np.int64)
    same = site[1:] == site[:-1]
    k_next[:-1][same] = k[1:][same]
    k_end = np.minimum(k_next - 1, (t + hold_us) // b)
    gap = np.flatnonzero(k_end > k)
    before = np.flatnonzero(window.last_before_us >= window.lo_us - hold_us)
    if np.any(np.isnan(window.last_before_kw[before])):
        raise AuditInputError(
            "site telemetry without battery_power_kw before the window: "
            "the archive does not follow SiteTelemetry.avsc"
        )
    t_pre = window.last_before_us[before]
    first = np.minimum(np.searchsorted(site, before, side="left"), max(site.size - 1, 0))
    in_window = site.size > 0 and site[first] == before
    k_pre_next = np.where(in_window, k[first] if site.size else never, never)
    starts = np.concatenate([k[gap] + 1, t_pre // b])
    ends = np.concatenate([k_end[gap], np.minimum(k_pre_next - 1, (t_pre + hold_us) // b)])
    lo_idx = np.searchsorted(buckets, starts, side="left")
    hi_idx = np.searchsorted(buckets, ends, side="right")
    length = np.maximum(hi_idx - lo_idx, 0)
    row = np.repeat(np.arange(length.size), length)
    offset = np.arange(row.size) - np.repeat(np.cumsum(length) - length, length)
    target = lo_idx[row] + offset
    out = []
    at_gap = gap if every else rows[gap]
    for per_sample, per_site in columns:
        own = np.bincount(
            inv_last, weights=per_sample if every else per_sample[rows], minlength=buckets.size
        )
        values = np.concatenate([per_sample[at_gap], per_site[before]])
        held = np.bincount(target, weights=values[row], minlength=buckets.size)
        out.append(np.asarray(own + held, dtype=np.float64))
    return out


def window_frame(
    con: duckdb.DuckDBPyConnection,
    bucket_ms: int,
    activation: Activation,
    *,
    since_us: int | None = None,
    until_us: int | None = None,
    pre_s: float = PRE_S,
    hold_s: float = HOLD_S,
) -> FleetFrame:
    """The frame (with power) of the buckets the fleet series of ``activation`` takes."""
    lo, hi = window_bounds(bucket_ms, activation, since_us=since_us, until_us=until_us, pre_s=pre_s)
    return window_fleet_frame(
        read_window(con, lo, hi, max(LOOKBACK_S, hold_s), hold_s), bucket_ms, hold_s
    )
