"""Audit speed: ``flowerhub audit --log`` against a plain DuckDB scan of the same archive.

Archive: 24 h x 1,300 sites x 1 Hz telemetry (112.32 M rows), generated straight into the
archive's Parquet layout by DuckDB (``COPY ... TO``, one part file per hour, every column
the archiver writes: :data:`analytics.archive.writer.ARCHIVE_COLUMNS` with the payload JSON,
then ``fields_typed`` and the typed SiteTelemetry columns of :mod:`analytics.archive.schema`;
the Avro ``value`` bytes are left empty because nothing here reads them and encoding 10^8
records in Python would dominate). Generated once (~10-15 min on a busy 2-core box) into
``.cache/bench/audit-<version>-<sites>x<seconds>s/`` and reused by later runs; an
interrupted generation resumes by hour. The frequency wanders around 50 Hz with one dip
to 49.75 Hz for 60 s (an FCR-D up event with no activation event: detected from telemetry)
and one mFRR order (MarketActivation) that the sites follow within 11 min; every 97th site
responds with the wrong sign. Assignments and the order are real codec-encoded events.
Every site reports what SiteTelemetry v2 carries (issue 14): its baseline (self-consumption,
following a 10-minute load cycle of its own phase), FCR-D up and FCR-N armed (5 and 1 kW)
and the mFRR order's change while it is in force; battery power = baseline + FCR-N's and
FCR-D up's droop + the order, so every window sums the baselines and takes FCR-N off.

Figure: wall time of the whole audit (first-sample probe, interval probe, fleet frequency
scan of the whole range, activations, each activation's window read once for its fleet
power and the per-site offenders over all 1,300 sites, FOPDT fits, verdicts). Baseline,
same run, same files: ``SELECT epoch_us(event_time) // 1000000,
sum(site_telemetry__battery_power_kw) FROM read_parquet(<telemetry files>) GROUP BY 1``
(a plain per-second fleet sum: the least any audit of the range must read and group).
The machine is shared and noisy: after one untimed warm-up scan, ``BENCH_AUDIT_ROUNDS``
(default 3) rounds alternate scan and audit, and the best round of each is the figure
(every round is in the note, with the load average). Goal: <= 3x the scan and <= 30 s.
``BENCH_AUDIT_SECONDS`` sets another length (e.g. 3600 for a quick run; it gets its own
cache directory).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import duckdb

from analytics.archive.layout import hour_bucket, part_path, remove_temp_files, temp_path
from analytics.archive.schema import TYPED_MARKER, default_layouts
from analytics.audit.run import AuditOptions, AuditResult, audit_log
from analytics.testing.scenario import LogBuilder, activation, assignment
from analytics.testing.synthetic import TELEMETRY_EVENT, TELEMETRY_TOPIC
from bench import BenchResult
from contract.enums import Product

SITES = 1300
SECONDS = int(os.environ.get("BENCH_AUDIT_SECONDS", "86400"))
ROUNDS = max(1, int(os.environ.get("BENCH_AUDIT_ROUNDS", "3")))
CACHE_DIR = Path(__file__).resolve().parent.parent / ".cache" / "bench"
GENERATOR_VERSION = "v3"  # bump when the generated archive changes
START_MS = 1_790_002_800_000  # 2026-09-21T15:00:00Z, on the hour
DIP_AT_S, DIP_LEN_S = 600, 60
ORDER_AT_S, ORDER_LEN_S = 1800, 1200
PER_SITE_KW = 5.0
FCRN_KW = 1.0


def _payload_sql() -> str:
    return (
        'printf(\'{"event_id":"%s","event_time":%d,'
        '"ingest_time":null,"site_id":"%s","oem":"%s","model":"M",'
        '"battery_power_kw":%.3f,"soc_pct":50.0,"grid_power_kw":%.3f,"pv_power_kw":2.0,'
        '"load_kw":0.5,"frequency_hz":%.4f,"headroom_up_kw":5.0,"headroom_down_kw":5.0,'
        '"max_discharge_kw":10.0,"max_charge_kw":10.0,"capacity_kwh":15.0,"mode":"REMOTE",'
        '"setpoint_kw":null,"active_command_id":null,"reserve_armed":"FCR_N",'
        '"faulted":false,"baseline_kw":%.3f,"armed_fcr_n_kw":%.1f,"armed_fcr_d_up_kw":%.1f,'
        '"armed_fcr_d_down_kw":0.0,"armed_ffr_kw":0.0,"order_afrr_kw":0.0,'
        f'"order_mfrr_kw":%.1f}}\', eid, us, site, oem, p, p - 0.5, f, b, {FCRN_KW}, '
        f"{PER_SITE_KW}, o)"
    )


# SiteTelemetry field -> SQL over the generator's columns (the same values as the payload)
_FIELDS = {
    "event_id": "eid",
    "site_id": "site",
    "oem": "oem",
    "model": "'M'",
    "battery_power_kw": "p",
    "soc_pct": "50.0",
    "grid_power_kw": "p - 0.5",
    "pv_power_kw": "2.0",
    "load_kw": "0.5",
    "frequency_hz": "f",
    "headroom_up_kw": "5.0",
    "headroom_down_kw": "5.0",
    "max_discharge_kw": "10.0",
    "max_charge_kw": "10.0",
    "capacity_kwh": "15.0",
    "mode": "'REMOTE'",
    "setpoint_kw": "NULL",
    "active_command_id": "NULL",
    "reserve_armed": "'FCR_N'",
    "faulted": "false",
    "baseline_kw": "b",
    "armed_fcr_n_kw": str(FCRN_KW),
    "armed_fcr_d_up_kw": str(PER_SITE_KW),
    "armed_fcr_d_down_kw": "0.0",
    "armed_ffr_kw": "0.0",
    "order_afrr_kw": "0.0",
    "order_mfrr_kw": "o",
}


def _typed_sql() -> str:
    """``fields_typed`` and the typed SiteTelemetry columns, as the archive writer has them."""
    layout = default_layouts()[TELEMETRY_EVENT]
    missing = {f.field for f in layout.fields} ^ set(_FIELDS)
    if missing:
        raise RuntimeError(f"bench generator out of date with SiteTelemetry.avsc: {missing}")
    cols = [f"true AS {TYPED_MARKER}"]
    cols += [f'CAST({_FIELDS[f.field]} AS {f.duck_type}) AS "{f.column}"' for f in layout.fields]
    return ", ".join(cols)


def write_telemetry(root: Path, seconds: int, sites: int = SITES) -> int:
    """Generate the telemetry archive (one part file per hour); returns the row count.

    Every column the archiver writes: the base columns with the payload JSON, then
    ``fields_typed`` and the typed SiteTelemetry columns (``value`` bytes left empty).
    Rows come out in offset order (one ``range``, insertion order kept: no sort). An hour
    whose file exists is kept, so an interrupted generation resumes.
    """
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET enable_progress_bar = false")
    first = 0
    for h0 in range(0, seconds, 3600):
        h1 = min(h0 + 3600, seconds)
        rows = (h1 - h0) * sites
        path = part_path(
            root,
            TELEMETRY_TOPIC,
            hour_bucket(START_MS + h0 * 1000),
            partition=0,
            first_offset=first,
            last_offset=first + rows - 1,
        )
        if path.is_file():  # made by an interrupted earlier run: files are renamed when complete
            first += rows
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(path)
        dip = f"(s >= {DIP_AT_S} AND s < {DIP_AT_S + DIP_LEN_S})"
        order = f"(s >= {ORDER_AT_S} AND s < {ORDER_AT_S + ORDER_LEN_S})"
        sql = f"""
        COPY (
          WITH n AS (
            SELECT {h0} + n // {sites} AS s, n % {sites} AS i, {first} + n AS off
            FROM range(0, {rows}) r(n)
          ), g AS (
            SELECT s, i, off,
                   ({START_MS} + s * 1000 + i % 200) * 1000 AS us,
                   ['huawei', 'sungrow', 'saj'][i % 3 + 1] AS oem,
                   printf('site-%05d', i) AS site,
                   CASE WHEN {dip} THEN 49.75 ELSE 50.0 + 0.02 * sin(s / 60.0) END AS f,
                   CASE WHEN i % 97 = 0 THEN -1.0 ELSE 1.0 END AS sign
            FROM n
          ), q AS (
            SELECT *, printf('00000000-0000-4000-8000-%012d', off) AS eid,
                 round(-1.5 + 0.8 * sin(s / 95.5 + i), 3) AS b,
                 CASE WHEN {order} THEN {PER_SITE_KW} ELSE 0.0 END AS o
            FROM g
          ), p AS (
            SELECT *,
                 round(b + sign * ({PER_SITE_KW} * greatest(0.0, least(1.0, (49.9 - f) / 0.4))
                 + {FCRN_KW} * greatest(-1.0, least(1.0, (50.0 - f) / 0.1)))
                 + CASE WHEN {order} THEN {PER_SITE_KW}
                        * greatest(0.0, least(1.0, (s - {ORDER_AT_S} - 60) / 600.0)) ELSE 0 END,
                 3) AS p
            FROM q
          )
          SELECT '{TELEMETRY_TOPIC}' AS topic, 0::INTEGER AS "partition", off::BIGINT AS "offset",
                 make_timestamp(us + 150000) AS kafka_timestamp, 0::SMALLINT AS timestamp_type,
                 encode(site) AS key, ''::BLOB AS value,
                 NULL::VARCHAR AS headers, '{TELEMETRY_EVENT}' AS event_name,
                 {_payload_sql()} AS payload,
                 make_timestamp(us) AS event_time, NULL::TIMESTAMP AS ingest_time,
                 NULL::VARCHAR AS decode_error, NULL::VARCHAR AS decode_reason,
                 make_timestamp(us + 200000) AS archived_at,
                 {_typed_sql()}
          FROM p
        ) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)
        """  # noqa: S608  # generated from integers and fixed text
        con.execute(sql)
        tmp.replace(path)
        first += rows
    con.close()
    return first


def write_events(root: Path, seconds: int = SECONDS) -> None:
    """The FCR-D assignment (for the detected event) and the mFRR order, codec-encoded."""
    b = LogBuilder(seed=5)
    start_us, end_us = START_MS * 1000, (START_MS + seconds * 1000) * 1000
    capacity = SITES * PER_SITE_KW / 1000
    assignment(
        b,
        Product.FCR_D_UP,
        capacity_mw=capacity,
        valid_from_us=start_us,
        valid_until_us=end_us,
        band_hz=(49.9, 49.5),
    )
    if seconds >= ORDER_AT_S + ORDER_LEN_S:
        activation(
            b,
            activation_id="bench-mfrr-1",
            product=Product.MFRR,
            kind="ORDER",
            start_us=start_us + ORDER_AT_S * 1_000_000,
            end_us=start_us + (ORDER_AT_S + ORDER_LEN_S) * 1_000_000,
            requested_mw=capacity,
        )
    b.write(root)


def cached_archive(seconds: int = SECONDS, sites: int = SITES) -> tuple[Path, int, float | None]:
    """The generated archive under ``.cache/bench/`` (made once): (root, rows, seconds taken).

    The seconds taken are None when the archive came from the cache. A directory without
    its ``complete`` marker (an interrupted generation) is completed: its complete hours
    are kept, the events are written again.
    """
    root = CACHE_DIR / f"audit-{GENERATOR_VERSION}-{sites}x{seconds}s"
    marker = root / "complete"
    if marker.is_file():
        return root, int(marker.read_text(encoding="utf-8")), None
    remove_temp_files(root)
    for topic_dir in root.glob("topic=*"):
        if topic_dir.name != f"topic={TELEMETRY_TOPIC}":
            shutil.rmtree(topic_dir)
    t0 = time.perf_counter()
    rows = write_telemetry(root, seconds, sites)
    write_events(root, seconds)
    marker.write_text(str(rows), encoding="utf-8")
    return root, rows, time.perf_counter() - t0


def plain_scan(root: Path) -> float:
    """Seconds of the baseline: per-second fleet sum straight from the telemetry files."""
    files = str(root / f"topic={TELEMETRY_TOPIC}" / "hour=*" / "part-*.parquet")
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")  # as the audit's connection
        t0 = time.perf_counter()
        con.execute(
            "SELECT epoch_us(event_time) // 1000000 AS sec, "  # noqa: S608  # fixed text, path
            "sum(site_telemetry__battery_power_kw) "
            f"FROM read_parquet('{files}') GROUP BY sec"
        ).fetchall()
        return time.perf_counter() - t0


def timed_audit(root: Path) -> tuple[float, AuditResult]:
    """Seconds of one whole audit of ``root`` (default options) and its result."""
    t0 = time.perf_counter()
    result = audit_log(root, AuditOptions())
    return time.perf_counter() - t0, result


def run() -> list[BenchResult]:
    root, rows, generate_s = cached_archive()
    plain_scan(root)  # warm-up: the timed rounds start with the files in the page cache
    scans: list[float] = []
    audits: list[float] = []
    for _round in range(ROUNDS):
        scans.append(plain_scan(root))
        audit_s, result = timed_audit(root)
        audits.append(audit_s)
    found = [r.activation.activation_id for r in result.results]
    offenders = sum(len(r.offenders) for r in result.results)
    made = "cached" if generate_s is None else f"generated in {generate_s:.0f} s"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    rounds = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(audits, scans, strict=True))
    note = (
        f"{rows:,} rows = {SITES} sites x {SECONDS} s at 1 Hz ({made}, {root.name}); "
        f"{len(found)} activations judged ({', '.join(found)}), {offenders} offender rows; "
        f"best of {ROUNDS} alternating rounds, audit/scan s: {rounds}; "
        f"load average {load} on {os.cpu_count()} CPUs"
    )
    return [
        BenchResult(
            name="audit_log_vs_duckdb_scan",
            value=min(audits),
            unit="s",
            baseline=min(scans),
            goal="<= 3x and <= 30 s",
            higher_is_better=False,
            note=note,
        )
    ]


if __name__ == "__main__":
    for r in run():
        print(r.as_json())
