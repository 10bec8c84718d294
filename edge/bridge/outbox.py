"""Durable on-disk outbox: every outgoing event is appended here, then sent to Kafka in order.

Layout: ``<dir>/<lane>/<first-seq>.seg`` append-only segment files plus ``<dir>/<lane>/state``
(the first unacknowledged sequence number and the drop count). Two lanes: ``critical``
(command results, faults: never dropped) and ``bulk`` (telemetry, device status: the oldest is
dropped at the bound). Sequence numbers are global, so :meth:`Outbox.pending` returns records of
both lanes in the order they were appended.

Record: ``u32 body length | u32 CRC-32 of (seq + body) | u64 seq | body``; body =
``u16 topic len | u16 key len | u16 event id len | topic | key | event id | value``.

Durability (fsync policy). Every record is written to the OS before :meth:`append` returns, so
a crash of the process loses nothing. What survives a power cut depends on the mode:

* inline (default, standalone use): a critical record is fsynced before :meth:`append` returns;
  bulk records at most ``fsync_interval_s`` apart; the acknowledged state is replaced
  atomically (write, fsync, rename) on every :meth:`ack`.
* deferred (``defer_sync=True``, the bridge): nothing blocking happens on the caller's thread
  (the event loop). The bridge's disk thread calls :meth:`make_durable`: after every group
  commit for the critical lane (a CommandResult's offset is committed only after its record
  was fsynced there), and every ``fsync_interval_s`` for the bulk lane and the acknowledged
  state. The bulk lane is fsynced only while it holds unsent records: while Kafka keeps up,
  telemetry is acknowledged within milliseconds and fsyncing it would protect nothing (the
  broker holds it, replicated); while Kafka is slow or unreachable the records wait here and a
  power cut loses at most the last ``fsync_interval_s`` of them. The acknowledged state may
  lag by the same interval: after a power cut a few acknowledged records are sent again with
  their original ``event_id`` (at-least-once, consumers deduplicate), never fewer.

Crash safety: on open every segment is scanned; a torn or CRC-failing tail is cut off and
everything before it is kept. Delivery is at-least-once: records are deleted only after
:meth:`ack` (called once the broker acknowledged them); a crash between the broker's ack and
ours re-sends those records with their original ``event_id``, so consumers deduplicate by
event id. The outbox never creates a second event id for an event.

Bound: ``max_events`` / ``max_bytes`` over both lanes. At the bound the oldest bulk records are
dropped (counted in :attr:`Outbox.dropped`, reported in DeviceStatus.outbox_dropped); when no
bulk record is left to drop, an incoming bulk record is itself dropped. Critical records are
never dropped: beyond ``critical_max_bytes`` of them :meth:`append` raises :class:`OutboxFullError`.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_HEADER = struct.Struct(">IIQ")
_BODY_HEAD = struct.Struct(">HHH")
_MAX_FIELD = 0xFFFF
_MAX_BODY = 64 * 1024 * 1024
CRITICAL = "critical"
BULK = "bulk"


class OutboxError(Exception):
    """Bad outbox input or configuration."""


class OutboxFullError(OutboxError):
    """The critical lane reached its bound; the caller must stop producing critical events."""


@dataclass(frozen=True)
class OutboxRecord:
    seq: int
    lane: str
    topic: str
    key: bytes
    event_id: str
    value: bytes


@dataclass(frozen=True)
class _Entry:
    seq: int
    segment: Path
    offset: int
    size: int


def encode_record(seq: int, topic: str, key: bytes, event_id: str, value: bytes) -> bytes:
    t, e = topic.encode(), event_id.encode()
    if max(len(t), len(key), len(e)) > _MAX_FIELD:
        raise OutboxError("topic, key and event id must each be < 64 KiB")
    body = _BODY_HEAD.pack(len(t), len(key), len(e)) + t + key + e + value
    if len(body) > _MAX_BODY:
        raise OutboxError(f"record of {len(body)} bytes exceeds {_MAX_BODY}")
    crc = zlib.crc32(struct.pack(">Q", seq) + body)
    return _HEADER.pack(len(body), crc, seq) + body


def decode_body(seq: int, lane: str, body: bytes) -> OutboxRecord:
    lt, lk, le = _BODY_HEAD.unpack_from(body)
    p = _BODY_HEAD.size
    topic = body[p : p + lt].decode()
    p += lt
    key = body[p : p + lk]
    p += lk
    event_id = body[p : p + le].decode()
    return OutboxRecord(seq, lane, topic, key, event_id, body[p + le :])


def scan_segment(data: bytes) -> tuple[list[tuple[int, int, int]], int]:
    """Valid records of a segment as (seq, offset, size) and the length of the valid prefix."""
    out: list[tuple[int, int, int]] = []
    pos = 0
    while pos + _HEADER.size <= len(data):
        length, crc, seq = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + length
        if length > _MAX_BODY or end > len(data):
            break
        body = data[pos + _HEADER.size : end]
        if zlib.crc32(struct.pack(">Q", seq) + body) != crc:
            break
        out.append((seq, pos, end - pos))
        pos = end
    return out, pos


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Lane:
    def __init__(self, root: Path, name: str, segment_bytes: int, defer: bool = False) -> None:
        self.name = name
        self.defer = defer
        self.lock = threading.Lock()  # the file handle and retired files vs the disk thread
        self.retired: list[BinaryIO] = []  # deferred: rotated-out files, fsynced then closed
        self.unsynced = False  # deferred: written since the last fsync
        self.state_dirty = False  # deferred: head/dropped changed since the last persist
        self.new_files = False  # deferred: a segment was created since the last dir fsync
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.entries: deque[_Entry] = deque()
        self.bytes = 0
        self.head = 0
        self.dropped = 0
        self.torn_bytes = 0
        self._acked: set[int] = set()
        self._fh: BinaryIO | None = None
        self._file: Path | None = None
        self._file_size = 0
        self._load()

    @property
    def _state_path(self) -> Path:
        return self.dir / "state"

    def _load(self) -> None:
        if self._state_path.exists():
            state = json.loads(self._state_path.read_text())
            self.head, self.dropped = int(state["head"]), int(state["dropped"])
        segments = sorted(self.dir.glob("*.seg"))
        for seg in segments:
            data = seg.read_bytes()
            found, valid = scan_segment(data)
            if valid < len(data):
                self.torn_bytes += len(data) - valid
                with seg.open("r+b") as fh:
                    fh.truncate(valid)
                    fh.flush()
                    os.fsync(fh.fileno())
            for seq, off, size in found:
                if seq >= self.head:
                    self.entries.append(_Entry(seq, seg, off, size))
                    self.bytes += size
        if segments:
            self._file = segments[-1]
            self._file_size = self._file.stat().st_size
        self._gc()

    def max_seq(self) -> int:
        return self.entries[-1].seq if self.entries else self.head - 1

    def write(self, seq: int, data: bytes, sync: bool) -> None:
        if self._file is None or self._file_size >= self.segment_bytes:
            with self.lock:
                if self.defer and self._fh is not None:
                    self.retired.append(self._fh)  # the disk thread fsyncs and closes it
                    self._fh = None
                self._close_file()
                self._file = self.dir / f"{seq:020d}.seg"
                self._file_size = 0
                self.new_files = True
        if self._fh is None:
            with self.lock:
                self._fh = self._file.open("ab")
        fh = self._fh
        fh.write(data)
        fh.flush()
        self.unsynced = True
        if sync:
            os.fsync(fh.fileno())
        self.entries.append(_Entry(seq, self._file, self._file_size, len(data)))
        self._file_size += len(data)
        self.bytes += len(data)

    def fsync(self) -> None:
        if self._fh is not None:
            os.fsync(self._fh.fileno())

    def make_durable(self, data: bool, state: bool) -> None:
        """Deferred mode, any thread: fsync written records (``data``) and the state (``state``)."""
        fds: list[int] = []
        retired: list[BinaryIO] = []
        new_files = False
        with self.lock:
            if data:
                retired, self.retired = self.retired, []
                if self.unsynced and self._fh is not None:
                    fds.append(os.dup(self._fh.fileno()))  # survives a rotation meanwhile
                self.unsynced = False
                new_files, self.new_files = self.new_files, False
            snapshot = (self.head, self.dropped) if state and self.state_dirty else None
            if snapshot is not None:
                self.state_dirty = False
        for fh in retired:
            os.fsync(fh.fileno())
            fh.close()
        for fd in fds:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if new_files:
            _fsync_dir(self.dir)
        if snapshot is not None:
            self._write_state(*snapshot)

    def _close_file(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._fh = None

    def close(self) -> None:
        with self.lock:
            for fh in self.retired:
                os.fsync(fh.fileno())
                fh.close()
            self.retired = []
        if self.state_dirty:
            self.state_dirty = False
            self._write_state(self.head, self.dropped)
        self._close_file()

    def _advance(self) -> int:
        n = 0
        while self.entries and self.entries[0].seq in self._acked:
            e = self.entries.popleft()
            self._acked.discard(e.seq)
            self.bytes -= e.size
            self.head = e.seq + 1
            n += 1
        return n

    @property
    def acked_seqs(self) -> set[int]:
        """Acknowledged out of order, waiting for the records before them."""
        return self._acked

    def ack(self, seqs: Iterable[int]) -> int:
        self._acked.update(s for s in seqs if s >= self.head)
        n = self._advance()
        if n:
            self._persist()
            self._gc()
        return n

    def drop_oldest(self) -> None:
        e = self.entries.popleft()
        self._acked.discard(e.seq)
        self.bytes -= e.size
        self.head = e.seq + 1
        self.dropped += 1
        self._advance()
        self._persist()
        self._gc()

    def count_dropped_incoming(self) -> None:
        self.dropped += 1
        self._persist()

    def _persist(self) -> None:
        if self.defer:
            self.state_dirty = True  # the disk thread writes it (make_durable)
            return
        self._write_state(self.head, self.dropped)

    def _write_state(self, head: int, dropped: int) -> None:
        tmp = self.dir / "state.tmp"
        with tmp.open("w") as fh:
            json.dump({"head": head, "dropped": dropped}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self._state_path)
        _fsync_dir(self.dir)

    def _gc(self) -> None:
        live = {e.segment for e in self.entries}
        for seg in self.dir.glob("*.seg"):
            if seg not in live and seg != self._file:
                seg.unlink()

    def read(self, entries: Iterable[_Entry]) -> list[OutboxRecord]:
        out: list[OutboxRecord] = []
        handles: dict[Path, BinaryIO] = {}
        try:
            for e in entries:
                fh = handles.get(e.segment)
                if fh is None:
                    fh = handles[e.segment] = e.segment.open("rb")
                fh.seek(e.offset + _HEADER.size)
                body = fh.read(e.size - _HEADER.size)
                out.append(decode_body(e.seq, self.name, body))
        finally:
            for fh in handles.values():
                fh.close()
        return out


class Outbox:
    """Two-lane durable outbox; see the module doc for the format and the policies."""

    def __init__(
        self,
        directory: Path | str,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        max_events: int = 200_000,
        critical_max_bytes: int = 16 * 1024 * 1024,
        segment_bytes: int = 4 * 1024 * 1024,
        fsync_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        defer_sync: bool = False,
    ) -> None:
        if max_bytes <= 0 or max_events <= 0 or critical_max_bytes <= 0 or segment_bytes <= 0:
            raise OutboxError("outbox bounds must be > 0")
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.max_events = max_events
        self.critical_max_bytes = critical_max_bytes
        self.fsync_interval_s = fsync_interval_s
        self._clock = clock
        self.defer_sync = defer_sync
        self._lanes = {n: _Lane(self.dir, n, segment_bytes, defer_sync) for n in (CRITICAL, BULK)}
        self._next_seq = 1 + max(lane.max_seq() for lane in self._lanes.values())
        self._last_sync = clock()

    @property
    def depth(self) -> int:
        return sum(len(lane.entries) for lane in self._lanes.values())

    @property
    def size_bytes(self) -> int:
        return sum(lane.bytes for lane in self._lanes.values())

    @property
    def dropped(self) -> int:
        return sum(lane.dropped for lane in self._lanes.values())

    @property
    def torn_bytes(self) -> int:
        """Bytes of torn/corrupt tails cut off when the outbox was opened."""
        return sum(lane.torn_bytes for lane in self._lanes.values())

    def append(
        self, topic: str, key: bytes, event_id: str, value: bytes, *, critical: bool
    ) -> int | None:
        """Store one event durably (per the fsync policy); its seq, or None if dropped."""
        seq = self._next_seq
        data = encode_record(seq, topic, key, event_id, value)
        bulk, crit = self._lanes[BULK], self._lanes[CRITICAL]
        if critical and crit.bytes + len(data) > self.critical_max_bytes:
            raise OutboxFullError(
                f"{crit.bytes} bytes of unsent critical events; bound {self.critical_max_bytes}"
            )
        while bulk.entries and not self._fits(len(data)):
            bulk.drop_oldest()
        if not critical and not self._fits(len(data)):
            bulk.count_dropped_incoming()
            return None
        self._next_seq += 1
        now = self._clock()
        lane = crit if critical else bulk
        sync = critical or now - self._last_sync >= self.fsync_interval_s
        sync = sync and not self.defer_sync
        lane.write(seq, data, sync)
        if sync and not critical:
            self._last_sync = now
        return seq

    def _fits(self, size: int) -> bool:
        return self.depth + 1 <= self.max_events and self.size_bytes + size <= self.max_bytes

    def sync(self) -> None:
        """fsync the bulk lane (call periodically; critical records are already synced)."""
        self._lanes[BULK].fsync()
        self._last_sync = self._clock()

    def make_durable(self, *, bulk: bool) -> None:
        """Deferred mode: fsync the critical lane; with ``bulk``, also the bulk lane (only if it
        holds unsent records) and both lanes' acknowledged state. Blocking and thread-safe:
        the bridge's disk thread calls it (see the module doc for the policy)."""
        crit, bulk_lane = self._lanes[CRITICAL], self._lanes[BULK]
        crit.make_durable(data=True, state=bulk)
        if bulk:
            bulk_lane.make_durable(data=bool(bulk_lane.entries), state=True)

    def pending(self, limit: int = 500) -> list[OutboxRecord]:
        """The oldest unacknowledged records of both lanes, in append order."""
        merged: list[tuple[str, _Entry]] = []
        for name, lane in self._lanes.items():
            merged.extend((name, e) for e in list(lane.entries)[:limit])
        merged.sort(key=lambda t: t[1].seq)
        merged = merged[:limit]
        out: list[OutboxRecord] = []
        for name, lane in self._lanes.items():
            out.extend(lane.read(e for n, e in merged if n == name))
        out.sort(key=lambda r: r.seq)
        return out

    def after(self, seq: int, limit: int = 500) -> list[OutboxRecord]:
        """The oldest unacknowledged records appended after ``seq``, in append order (a
        sender that keeps records in flight reads on from the last one it took; binary
        search per lane: no scan of the records before ``seq``)."""
        merged: list[tuple[str, _Entry]] = []
        for name, lane in self._lanes.items():
            entries = lane.entries
            lo, hi = 0, len(entries)
            while lo < hi:  # first entry with a seq above ``seq``
                mid = (lo + hi) // 2
                if entries[mid].seq <= seq:
                    lo = mid + 1
                else:
                    hi = mid
            picked = [entries[i] for i in range(lo, min(len(entries), lo + limit))]
            merged.extend((name, e) for e in picked if e.seq not in lane.acked_seqs)
        merged.sort(key=lambda t: t[1].seq)
        merged = merged[:limit]
        out: list[OutboxRecord] = []
        for name, lane in self._lanes.items():
            out.extend(lane.read(e for n, e in merged if n == name))
        out.sort(key=lambda r: r.seq)
        return out

    def ack(self, records: Iterable[OutboxRecord]) -> int:
        """Mark records delivered (after the broker acknowledged them); returns how many left."""
        by_lane: dict[str, list[int]] = {CRITICAL: [], BULK: []}
        for r in records:
            by_lane[r.lane].append(r.seq)
        return sum(self._lanes[n].ack(seqs) for n, seqs in by_lane.items())

    def close(self) -> None:
        for lane in self._lanes.values():
            lane.fsync()
            lane.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
