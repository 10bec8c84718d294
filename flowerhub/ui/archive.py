"""Fill the view model from an archive (``flowerhub archive``'s Parquet files) instead of Kafka.

``flowerhub ui --archive DIR`` (and ``flowerhub demo --ui-keep`` once the run is over) shows
a finished run: "now" is the archive's newest record, and the same windows as live apply
from there (``site.telemetry`` and ``fleet.state`` from end - ``window_s``, the logs from end -
``lookback_s``, the compacted state topics whole). The records are read by one DuckDB query
over the part files (``analytics.archive.layout``), in Kafka-timestamp order, and folded in
chunks like a live batch. (The replay's reader, one query per part file, took seconds for
a 5-minute demo run flushed every 2 s.)

The archive holds topic names as they were on the broker (``demo-<run>.site.telemetry``):
the UI topics are found by their table name at the end of the directory name, and one prefix
must cover them all (else :class:`ArchiveError` names the prefixes found).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import duckdb

from analytics.archive.compact import live_parts
from analytics.archive.layout import hour_bucket
from flowerhub.ui.feed import START_POLICY
from flowerhub.ui.fold import TOPIC_ORDER, Folder

CHUNK = 10_000


class ArchiveError(ValueError):
    """An archive directory the UI cannot show (missing, empty, several topic prefixes)."""


def ui_topics(root: Path) -> dict[str, str]:
    """Archived topic -> its table name, for the topics the UI reads."""
    if not root.is_dir():
        raise ArchiveError(f"archive directory not found: {root}")
    names = sorted({p.name.removeprefix("topic=") for p in root.glob("topic=*") if p.is_dir()})
    found: dict[str, str] = {}
    for name in names:
        for table in TOPIC_ORDER:
            if name == table or name.endswith("." + table):
                found[name] = table
    prefixes = {full[: len(full) - len(table)] for full, table in found.items()}
    if len(prefixes) > 1:
        raise ArchiveError(
            f"{root} holds the UI topics under several prefixes ({', '.join(sorted(prefixes))}); "
            "archive one run per directory"
        )
    if not found:
        raise ArchiveError(f"{root} holds none of the topics {', '.join(TOPIC_ORDER)}")
    return found


def archive_end_ms(con: duckdb.DuckDBPyConnection, root: Path, topics: Iterable[str]) -> int:
    """The newest Kafka timestamp in the newest hour of the archived ``topics``."""
    parts = live_parts(root, list(topics))
    if not parts:
        raise ArchiveError(f"{root} has no complete part files")
    newest = max(p.hour for p in parts)
    files = [str(p.path) for p in parts if p.hour == newest]
    row = con.execute(
        "SELECT max(epoch_ms(kafka_timestamp)) FROM read_parquet(?, hive_partitioning = false)",
        [files],
    ).fetchone()
    if row is None or row[0] is None:
        raise ArchiveError(f"{root}: no records in the newest hour {newest}")
    return int(row[0])


def load_archive(
    folder: Folder,
    root: Path,
    *,
    window_s: float,
    lookback_s: float,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Fold the archive's UI topics into ``folder``'s model; the number of records read.

    One DuckDB query over the part files that can hold records of the windows (by their
    hour), each topic from its own start, in Kafka-timestamp order (ties: topic, partition,
    offset), read in chunks of ``CHUNK``.
    """
    topics = ui_topics(root)
    con = duckdb.connect()
    try:
        end_ms = archive_end_ms(con, root, topics)
        starts: dict[str, int] = {}
        for full, table in topics.items():
            policy = START_POLICY[table]
            back_s = window_s if policy == "window" else lookback_s
            starts[full] = 0 if policy == "beginning" else max(0, end_ms - int(back_s * 1000))
        files = [
            str(p.path)
            for p in live_parts(root, list(topics))
            if p.hour >= hour_bucket(starts[p.topic])
        ]
        if not files:
            return 0
        where = " OR ".join("(topic = ? AND epoch_ms(kafka_timestamp) >= ?)" for _ in starts)
        params: list[object] = [files]
        for full, start in starts.items():
            params += [full, start]
        cursor = con.execute(
            "SELECT topic, value FROM read_parquet(?, hive_partitioning = false) "  # noqa: S608  # placeholders only
            f'WHERE {where} ORDER BY kafka_timestamp, topic, "partition", "offset"',
            params,
        )
        count = 0
        while batch := cursor.fetchmany(CHUNK):
            chunk: dict[str, list[bytes | None]] = {}
            for topic, value in batch:
                chunk.setdefault(topics[topic], []).append(value)
            folder.fold_batches(chunk)
            count += len(batch)
            if progress is not None:
                progress(count)
        return count
    finally:
        con.close()
