"""Durable outbox: order, ack, reopen, torn tail, bound policy, fsync policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.bridge.outbox import (
    Outbox,
    OutboxError,
    OutboxFullError,
    decode_body,
    encode_record,
    scan_segment,
)


def fill(box: Outbox, n: int, *, critical: bool = False, prefix: str = "e") -> list[int | None]:
    return [
        box.append("site.telemetry", b"s1", f"{prefix}{i}", b"x" * 50, critical=critical)
        for i in range(n)
    ]


def ids(box: Outbox, limit: int = 10_000) -> list[str]:
    return [r.event_id for r in box.pending(limit)]


def test_order_across_lanes_and_ack(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box:
        box.append("t", b"k", "a", b"1", critical=False)
        box.append("r", b"k", "b", b"2", critical=True)
        box.append("t", b"k", "c", b"3", critical=False)
        recs = box.pending()
        assert [(r.event_id, r.topic, r.value) for r in recs] == [
            ("a", "t", b"1"),
            ("b", "r", b"2"),
            ("c", "t", b"3"),
        ]
        assert box.ack(recs[:2]) == 2
        assert ids(box) == ["c"]
        assert box.depth == 1


def test_out_of_order_ack_keeps_head(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box:
        fill(box, 3)
        recs = box.pending()
        assert box.ack([recs[2]]) == 0  # the first two are still unacknowledged
        assert ids(box) == ["e0", "e1", "e2"]
        assert box.ack([recs[0], recs[1]]) == 3
        assert box.depth == 0


def test_reopen_keeps_unacked_and_sequence(tmp_path: Path) -> None:
    with Outbox(tmp_path, segment_bytes=1024) as box:
        fill(box, 40)
        box.ack(box.pending(10))
    with Outbox(tmp_path, segment_bytes=1024) as box:
        assert ids(box) == [f"e{i}" for i in range(10, 40)]
        seq = box.append("t", b"", "new", b"", critical=True)
        assert seq == 40  # e0..e39 took 0..39
        assert box.pending(100)[-1].event_id == "new"
        assert len(list((tmp_path / "bulk").glob("*.seg"))) > 1
        box.ack(box.pending(100))
        # acknowledged segments are deleted; only the one being written to stays
        assert len(list((tmp_path / "bulk").glob("*.seg"))) == 1


@pytest.mark.parametrize("cut", [1, 7, 13, 40])
def test_torn_last_record_is_ignored(tmp_path: Path, cut: int) -> None:
    with Outbox(tmp_path) as box:
        fill(box, 5)
    seg = sorted((tmp_path / "bulk").glob("*.seg"))[-1]
    data = seg.read_bytes()
    seg.write_bytes(data[:-cut])  # the process died in the middle of the last write
    with Outbox(tmp_path) as box:
        assert ids(box) == ["e0", "e1", "e2", "e3"]
        assert box.torn_bytes == len(data) - cut - (len(data) // 5) * 4
        box.append("t", b"", "after", b"", critical=False)
    with Outbox(tmp_path) as box:
        assert ids(box) == ["e0", "e1", "e2", "e3", "after"]
        assert box.torn_bytes == 0


def test_corrupt_last_record_is_ignored(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box:
        fill(box, 3, critical=True)
    seg = sorted((tmp_path / "critical").glob("*.seg"))[-1]
    data = bytearray(seg.read_bytes())
    data[-3] ^= 0xFF
    seg.write_bytes(bytes(data))
    with Outbox(tmp_path) as box:
        assert ids(box) == ["e0", "e1"]


def test_bound_drops_oldest_bulk_never_critical(tmp_path: Path) -> None:
    with Outbox(tmp_path, max_events=10) as box:
        fill(box, 3, critical=True, prefix="r")
        fill(box, 10, prefix="t")
        # 3 critical + 7 newest telemetry; 3 oldest telemetry dropped
        assert ids(box) == ["r0", "r1", "r2", *[f"t{i}" for i in range(3, 10)]]
        assert box.dropped == 3
        fill(box, 7, critical=True, prefix="R")
        assert all(i.startswith(("r", "R")) for i in ids(box))
        assert box.dropped == 10
        # nothing droppable left: incoming telemetry is dropped and counted
        assert box.append("t", b"", "late", b"", critical=False) is None
        assert box.dropped == 11
    with Outbox(tmp_path, max_events=10) as box:
        assert box.dropped == 11


def test_bound_in_bytes(tmp_path: Path) -> None:
    with Outbox(tmp_path, max_bytes=4096) as box:
        fill(box, 100)
        assert box.size_bytes <= 4096
        assert box.dropped > 0
        assert ids(box)[-1] == "e99"


def test_critical_lane_full_raises(tmp_path: Path) -> None:
    with Outbox(tmp_path, critical_max_bytes=500) as box:
        fill(box, 5, critical=True)
        with pytest.raises(OutboxFullError, match="critical"):
            fill(box, 5, critical=True)


def test_fsync_policy(tmp_path: Path) -> None:
    now = [0.0]
    box = Outbox(tmp_path, fsync_interval_s=1.0, clock=lambda: now[0])
    fill(box, 2)
    now[0] = 2.0
    fill(box, 1)  # the interval passed: this append fsyncs
    box.sync()
    box.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_bytes": 0}, "bounds"), ({"max_events": -1}, "bounds")],
)
def test_bad_bounds(tmp_path: Path, kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(OutboxError, match=message):
        Outbox(tmp_path, **kwargs)  # type: ignore[arg-type]  # only int bounds in the table


def test_oversized_field(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box, pytest.raises(OutboxError, match="64 KiB"):
        box.append("t" * 70_000, b"", "e", b"", critical=False)


@given(
    seq=st.integers(0, 2**63),
    topic=st.text(max_size=30),
    key=st.binary(max_size=30),
    eid=st.text(max_size=40),
    value=st.binary(max_size=200),
)
def test_record_roundtrip(seq: int, topic: str, key: bytes, eid: str, value: bytes) -> None:
    data = encode_record(seq, topic, key, eid, value)
    found, valid = scan_segment(data + data[:5])
    assert valid == len(data)
    assert found == [(seq, 0, len(data))]
    rec = decode_body(seq, "bulk", data[16:])
    assert (rec.topic, rec.key, rec.event_id, rec.value) == (topic, key, eid, value)


def test_after_reads_on_from_the_last_record_taken(tmp_path: Path) -> None:
    """A sender with records in flight reads on with ``after``: from the very first record
    (seq 0), skipping records acknowledged out of order, across both lanes in seq order."""
    ob = Outbox(tmp_path)
    seqs = [ob.append("t", b"k", f"e{i}", b"v%d" % i, critical=i % 3 == 0) for i in range(10)]
    assert seqs[0] == 0
    first = ob.after(-1, 4)
    assert [r.seq for r in first] == [0, 1, 2, 3]
    ob.ack([r for r in ob.after(-1, 10) if r.seq in (5, 6)])  # out of order
    assert [r.seq for r in ob.after(first[-1].seq, 10)] == [4, 7, 8, 9]
    assert ob.after(9, 10) == []
    ob.ack(ob.after(-1, 10))
    assert ob.depth == 0
    ob.close()
