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
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


Op = Callable[[sqlite3.Connection], Any]


class IdempotencyStore:
    """One sqlite file in the bridge's state dir; safe to reopen after a crash."""

    def __init__(self, path: Path | str, retention_s: float = 7 * 24 * 3600.0) -> None:
        if retention_s <= 0:
            raise IdempotencyError(f"retention_s must be > 0, got {retention_s}")
        self.path = Path(path)
        memory = str(path) == ":memory:"
        if not memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.retention_s = retention_s
        self._lock = threading.Lock()  # the write connection: disk thread or a sync caller
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        # Reads on the event loop: a connection of their own (":memory:" has one database).
        self._rdb = self._db if memory else sqlite3.connect(self.path, isolation_level=None)
        self._staged: dict[str, StoredCommand] = {}

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._rdb is not self._db:
                self._rdb.close()

    def __enter__(self) -> IdempotencyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------- the overlay
    def stage(self, record: StoredCommand) -> None:
        """Make a change visible to :meth:`get` before its group commit (event loop only)."""
        self._staged[record.command_id] = record

    def unstage(self, record: StoredCommand) -> None:
        """The change is committed (or failed): drop it unless a newer one replaced it."""
        if self._staged.get(record.command_id) is record:
            del self._staged[record.command_id]

    # ----------------------------------------------------------------- reads
    def get(self, command_id: str) -> StoredCommand | None:
        staged = self._staged.get(command_id)
        if staged is not None:
            return staged
        if self._rdb is self._db:
            with self._lock:
                return _get(self._db, command_id)
        return _get(self._rdb, command_id)

    def position(self, topic: str, partition: int) -> int | None:
        """The highest offset processed for a partition (None if never)."""
        row = self._rdb.execute(
            "SELECT offset FROM tracking WHERE topic = ? AND partition = ?", (topic, partition)
        ).fetchone()
        return None if row is None else int(row[0])

    def count(self) -> int:
        return int(self._rdb.execute("SELECT count(*) FROM commands").fetchone()[0])

    # ---------------------------------------------------------------- writes
    def run_batch(self, ops: Sequence[Op]) -> list[Any]:
        """Run ops in ONE transaction (one commit, one fsync); each op's result or exception.

        Each op runs in a savepoint: one that raises is rolled back alone and its exception
        is returned in its place. Blocking: call it from the disk thread.
        """
        out: list[Any] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for op in ops:
                    self._db.execute("SAVEPOINT op")
                    try:
                        out.append(op(self._db))
                        self._db.execute("RELEASE op")
                    except Exception as exc:
                        self._db.execute("ROLLBACK TO op")
                        self._db.execute("RELEASE op")
                        out.append(exc)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return out

    def _one(self, op: Op) -> Any:
        result = self.run_batch([op])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def claim(
        self,
        command_id: str,
        site_id: str,
        valid_until: datetime,
        now: datetime,
        tracking: Tracking | None = None,
    ) -> StoredCommand | None:
        """Claim a command id before writing. None = claimed now, go ahead; else the old record."""
        result: StoredCommand | None = self._one(
            claim_op(command_id, site_id, valid_until, now, tracking)
        )
        return result

    def complete(
        self,
        command_id: str,
        status: str,
        result_event_id: str,
        result: bytes,
        tracking: Tracking | None = None,
    ) -> None:
        """Store the outcome of a claimed command together with the tracking position."""
        self._one(complete_op(command_id, status, result_event_id, result, tracking))

    def purge(self, now: datetime | None = None) -> int:
        """Drop rows of commands that expired more than ``retention_s`` ago; returns the count."""
        count: int = self._one(self.purge_op(now))
        return count

    def purge_op(self, now: datetime | None = None) -> Op:
        t = now or datetime.now(UTC)
        horizon = _us(t) - int(self.retention_s * 1_000_000)

        def op(db: sqlite3.Connection) -> int:
            return db.execute("DELETE FROM commands WHERE valid_until_us < ?", (horizon,)).rowcount

        return op


def _get(db: sqlite3.Connection, command_id: str) -> StoredCommand | None:
    row = db.execute(
        "SELECT command_id, site_id, status, result_event_id, result FROM commands "
        "WHERE command_id = ?",
        (command_id,),
    ).fetchone()
    if row is None:
        return None
    return StoredCommand(row[0], row[1], row[2], row[3], row[4])


def _track(db: sqlite3.Connection, tracking: Tracking | None) -> None:
    if tracking is None:
        return
    db.execute(
        "INSERT INTO tracking (topic, partition, offset) VALUES (?, ?, ?) "
        "ON CONFLICT (topic, partition) DO UPDATE SET offset = max(offset, excluded.offset)",
        (tracking.topic, tracking.partition, tracking.offset),
    )


def claim_op(
    command_id: str,
    site_id: str,
    valid_until: datetime,
    now: datetime,
    tracking: Tracking | None = None,
) -> Callable[[sqlite3.Connection], StoredCommand | None]:
    """The claim as an op for :meth:`IdempotencyStore.run_batch` (None = claimed now)."""

    def op(db: sqlite3.Connection) -> StoredCommand | None:
        existing = _get(db, command_id)
        if existing is None:
            db.execute(
                "INSERT INTO commands (command_id, site_id, valid_until_us, claimed_at_us, "
                "status) VALUES (?, ?, ?, ?, ?)",
                (command_id, site_id, _us(valid_until), _us(now), CLAIMED),
            )
            _track(db, tracking)
        return existing

    return op


def complete_op(
    command_id: str,
    status: str,
    result_event_id: str,
    result: bytes,
    tracking: Tracking | None = None,
) -> Callable[[sqlite3.Connection], None]:
    """The completion as an op for :meth:`IdempotencyStore.run_batch`."""
    if status == CLAIMED:
        raise IdempotencyError("complete() needs a final status, not CLAIMED")

    def op(db: sqlite3.Connection) -> None:
        cur = db.execute(
            "UPDATE commands SET status = ?, result_event_id = ?, result = ? WHERE command_id = ?",
            (status, result_event_id, result, command_id),
        )
        if cur.rowcount != 1:
            raise IdempotencyError(f"command {command_id!r} was never claimed")
        _track(db, tracking)

    return op
