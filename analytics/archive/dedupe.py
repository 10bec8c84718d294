"""Each event id archived once per topic, whatever at-least-once delivery put in the log.

Producers deliver at least once (issue 15): a bridge that restarts after a crash resends the
outbox records whose acknowledgement it had not persisted, and a producer replaced after a
fatal error may have had a batch land without its ack. Such a copy carries the original
``event_id``. :class:`SeenIds` remembers the ids archived recently per topic (bounded: the
newest ``per_topic`` ids; duplicates arrive seconds apart, not hours) and the archiver skips
a decoded row whose id it has already archived from the same topic. Undecodable rows have no
id and are always kept. At start the window is refilled from the newest part files
(:func:`recent_ids`), so a copy read after a restart is still recognised.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import duckdb

from analytics.archive.layout import iter_parts
from analytics.archive.rows import ArchiveRow

DEFAULT_PER_TOPIC = 300_000  # ~4 min of 1,300 sites' telemetry at 1 Hz, ~40 MB at most


def event_id_of(row: ArchiveRow) -> str | None:
    """The row's ``event_id`` (None: undecodable, or an event without one)."""
    record = row.record
    if record is None:
        return None
    value = record.get("event_id")
    return None if value is None else str(value)


class SeenIds:
    """The newest ``per_topic`` event ids archived per topic (insertion order)."""

    def __init__(self, per_topic: int = DEFAULT_PER_TOPIC) -> None:
        if per_topic < 1:
            raise ValueError(f"per_topic must be >= 1, got {per_topic}")
        self.per_topic = per_topic
        self._ids: dict[str, OrderedDict[str, None]] = {}
        self.duplicates = 0

    def remember(self, topic: str, ids: Iterable[str]) -> None:
        seen = self._ids.setdefault(topic, OrderedDict())
        for event_id in ids:
            seen[event_id] = None
            seen.move_to_end(event_id)
        while len(seen) > self.per_topic:
            seen.popitem(last=False)

    def fresh(self, rows: Iterable[ArchiveRow]) -> list[ArchiveRow]:
        """``rows`` without those whose id was archived already (or repeats within them);
        the kept ids are remembered."""
        out: list[ArchiveRow] = []
        for row in rows:
            event_id = event_id_of(row)
            if event_id is None:
                out.append(row)
                continue
            seen = self._ids.setdefault(row.raw.topic, OrderedDict())
            if event_id in seen:
                self.duplicates += 1
                continue
            seen[event_id] = None
            if len(seen) > self.per_topic:
                seen.popitem(last=False)
            out.append(row)
        return out

    def count(self, topic: str) -> int:
        return len(self._ids.get(topic, ()))


def recent_ids(root: Path, topics: Iterable[str], per_topic: int) -> dict[str, list[str]]:
    """The event ids of each topic's newest part files, oldest first, at most ``per_topic``
    (read from the ``payload`` column: every archived event has one)."""
    out: dict[str, list[str]] = {}
    con = duckdb.connect()
    try:
        for topic in topics:
            parts = sorted(iter_parts(root, [topic]), key=lambda p: (p.hour, p.first_offset))
            chosen: list[Path] = []
            rows = 0
            for part in reversed(parts):
                chosen.append(part.path)
                rows += part.last_offset - part.first_offset + 1
                if rows >= per_topic:
                    break
            if not chosen:
                continue
            files = [str(p) for p in reversed(chosen)]
            found = con.execute(
                "SELECT json_extract_string(payload, '$.event_id') FROM read_parquet(?, "
                "union_by_name = true) WHERE payload IS NOT NULL ORDER BY archived_at, "
                '"partition", "offset"',
                [files],
            ).fetchall()
            out[topic] = [str(r[0]) for r in found if r[0] is not None][-per_topic:]
    finally:
        con.close()
    return out
