"""Outbox properties: no loss, no duplicates, order kept across acks, reopens and torn writes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.bridge.outbox import Outbox


def ids(box: Outbox) -> list[str]:
    return [r.event_id for r in box.pending(10_000)]


ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.booleans()),
        st.tuples(st.just("ack"), st.integers(0, 5)),
        st.tuples(st.just("reopen"), st.just(False)),
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(script=ops)
def test_model_no_loss_no_duplicates_in_order(
    tmp_path_factory: pytest.TempPathFactory, script: list[tuple[str, object]]
) -> None:
    """Below the bound: what was appended and not acked comes out once, in order, after reopen."""
    d = tmp_path_factory.mktemp("box")
    box = Outbox(d, segment_bytes=1024)
    model: list[str] = []
    n = 0
    for op, arg in script:
        if op == "append":
            box.append("t", b"k", f"id{n}", b"v" * 20, critical=bool(arg))
            model.append(f"id{n}")
            n += 1
        elif op == "ack":
            k = int(str(arg))
            box.ack(box.pending(k))
            model = model[k:]
        else:
            box.close()
            box = Outbox(d, segment_bytes=1024)
        assert ids(box) == model
    box.close()
    assert box.dropped == 0


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), cut=st.integers(0, 5000), critical=st.booleans())
def test_crash_at_any_byte_keeps_the_written_prefix(
    tmp_path_factory: pytest.TempPathFactory, n: int, cut: int, critical: bool
) -> None:
    """A crash in the middle of any write keeps every record written before it, intact."""
    d = tmp_path_factory.mktemp("torn")
    with Outbox(d) as box:
        for i in range(n):
            box.append("t", b"k", f"id{i}", bytes([i]) * (i + 1), critical=critical)
    lane = d / ("critical" if critical else "bulk")
    seg = sorted(lane.glob("*.seg"))[-1]
    data = seg.read_bytes()
    keep = min(cut, len(data))
    seg.write_bytes(data[:keep])
    with Outbox(d) as box:
        recs = box.pending(10_000)
    # record = 16 header + 6 lengths + topic + key + id + payload; count those before the cut
    end, whole = 0, 0
    for i in range(n):
        end += 16 + 6 + len("t") + len(b"k") + len(f"id{i}") + (i + 1)
        if end <= keep:
            whole += 1
    assert [r.event_id for r in recs] == [f"id{i}" for i in range(whole)]
    assert all(r.value == bytes([i]) * (i + 1) for i, r in enumerate(recs))
