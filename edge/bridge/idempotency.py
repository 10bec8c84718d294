"""At-most-once per command id, across redelivery, replay and restart: a sqlite3 file.

Modelled on eventsourcing's ProcessRecorder: the tracking record (topic, partition, offset)
is written in the same transaction as what the bridge did, so the two never disagree.

Protocol per command:

1. ``claim()`` before any register write: inserts the command id with status ``CLAIMED`` and
   the tracking position, in one transaction. Returns the stored record instead when the id is
   already known: the caller must not write again (it re-publishes the stored result, same
   ``result_event_id``, so consumers deduplicate by event id).
2. ``complete()`` after the write and the read-back: stores the outcome (status, result event
   id, the encoded result) and the tracking position in one transaction.

A crash between 1 and 2 leaves ``CLAIMED``: on redelivery the command is *not* written again
(at most once); the bridge reports it FAILED ("interrupted"). Retention: rows whose command
``valid_until`` lies more than ``retention_s`` in the past are purged; a replay of such a
command is refused by the expiry check anyway, so purging never re-opens a command id.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

CLAIMED = "CLAIMED"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    command_id      TEXT PRIMARY KEY,
    site_id         TEXT NOT NULL,
    valid_until_us  INTEGER NOT NULL,
    claimed_at_us   INTEGER NOT NULL,
    status          TEXT NOT NULL,
    result_event_id TEXT,
    result          BLOB
);
CREATE INDEX IF NOT EXISTS commands_valid_until ON commands (valid_until_us);
CREATE TABLE IF NOT EXISTS tracking (
    topic      TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    offset     INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""


class IdempotencyError(Exception):
    """Misuse of the store (completing an unknown command id, bad retention)."""


@dataclass(frozen=True)
class Tracking:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class StoredCommand:
    command_id: str
    site_id: str
    status: str
    result_event_id: str | None
    result: bytes | None

    @property
    def completed(self) -> bool:
        return self.status != CLAIMED


def _us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


class IdempotencyStore:
    """One sqlite file in the bridge's state dir; safe to reopen after a crash."""

    def __init__(self, path: Path | str, retention_s: float = 7 * 24 * 3600.0) -> None:
        if retention_s <= 0:
            raise IdempotencyError(f"retention_s must be > 0, got {retention_s}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.retention_s = retention_s
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> IdempotencyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, command_id: str) -> StoredCommand | None:
        row = self._db.execute(
            "SELECT command_id, site_id, status, result_event_id, result FROM commands "
            "WHERE command_id = ?",
            (command_id,),
        ).fetchone()
        if row is None:
            return None
        return StoredCommand(row[0], row[1], row[2], row[3], row[4])

    def claim(
        self,
        command_id: str,
        site_id: str,
        valid_until: datetime,
        now: datetime,
        tracking: Tracking | None = None,
    ) -> StoredCommand | None:
        """Claim a command id before writing. None = claimed now, go ahead; else the old record."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            existing = self.get(command_id)
            if existing is None:
                self._db.execute(
                    "INSERT INTO commands (command_id, site_id, valid_until_us, claimed_at_us, "
                    "status) VALUES (?, ?, ?, ?, ?)",
                    (command_id, site_id, _us(valid_until), _us(now), CLAIMED),
                )
                self._track(tracking)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return existing

    def complete(
        self,
        command_id: str,
        status: str,
        result_event_id: str,
        result: bytes,
        tracking: Tracking | None = None,
    ) -> None:
        """Store the outcome of a claimed command together with the tracking position."""
        if status == CLAIMED:
            raise IdempotencyError("complete() needs a final status, not CLAIMED")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cur = self._db.execute(
                "UPDATE commands SET status = ?, result_event_id = ?, result = ? "
                "WHERE command_id = ?",
                (status, result_event_id, result, command_id),
            )
            if cur.rowcount != 1:
                raise IdempotencyError(f"command {command_id!r} was never claimed")
            self._track(tracking)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _track(self, tracking: Tracking | None) -> None:
        if tracking is None:
            return
        self._db.execute(
            "INSERT INTO tracking (topic, partition, offset) VALUES (?, ?, ?) "
            "ON CONFLICT (topic, partition) DO UPDATE SET offset = max(offset, excluded.offset)",
            (tracking.topic, tracking.partition, tracking.offset),
        )

    def position(self, topic: str, partition: int) -> int | None:
        """The highest offset processed for a partition (None if never)."""
        row = self._db.execute(
            "SELECT offset FROM tracking WHERE topic = ? AND partition = ?", (topic, partition)
        ).fetchone()
        return None if row is None else int(row[0])

    def purge(self, now: datetime | None = None) -> int:
        """Drop rows of commands that expired more than ``retention_s`` ago; returns the count."""
        t = now or datetime.now(UTC)
        horizon = _us(t) - int(self.retention_s * 1_000_000)
        cur = self._db.execute("DELETE FROM commands WHERE valid_until_us < ?", (horizon,))
        return cur.rowcount

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM commands").fetchone()[0])
