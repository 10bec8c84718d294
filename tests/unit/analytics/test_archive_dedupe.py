"""The archive keeps each event id once per topic, across restarts of the archiver."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.archive.archiver import codec_decoder
from analytics.archive.dedupe import SeenIds, event_id_of, recent_ids
from analytics.archive.rows import ArchiveRow, RawRecord, decode_row
from analytics.archive.writer import ArchiveWriter
from analytics.testing.synthetic import SyntheticLog, synthetic_records

LOG = SyntheticLog(sites=3, samples=20, late_every=0, partitions=2)


def _rows() -> list[ArchiveRow]:
    decoder, errors = codec_decoder()
    return [decode_row(r, decoder, errors) for r in synthetic_records(LOG)]


def _again(row: ArchiveRow, offset: int) -> ArchiveRow:
    """The same event read again at a later offset (a resend after a lost ack)."""
    return dataclasses.replace(row, raw=dataclasses.replace(row.raw, offset=offset))


def test_a_resent_event_is_archived_once_undecodable_rows_always() -> None:
    rows = _rows()
    seen = SeenIds()
    first = seen.fresh(rows)
    assert first == rows
    garbage = decode_row(
        RawRecord(rows[0].raw.topic, 0, 10_000, 0, b"k", b"junk"), *codec_decoder()
    )
    again = seen.fresh([_again(rows[0], 9_000), _again(rows[5], 9_001), garbage, garbage])
    assert again == [garbage, garbage]
    assert seen.duplicates == 2


@given(st.integers(1, 30), st.lists(st.integers(0, 59), max_size=80))
def test_window_bounded_and_only_forgets_the_oldest(per_topic: int, picks: list[int]) -> None:
    rows = _rows()
    seen = SeenIds(per_topic)
    kept = seen.fresh(rows[i] for i in picks)
    ids = [event_id_of(r) for r in kept]
    first_seen = [event_id_of(rows[i]) for i in dict.fromkeys(picks)]
    if per_topic >= len(first_seen):  # nothing forgotten: each id exactly once
        assert ids == first_seen
    else:  # only forgotten (oldest) ids may come back
        assert set(ids) == set(first_seen)
    assert seen.count(rows[0].raw.topic) <= per_topic


def test_recent_ids_refill_the_window_after_a_restart(tmp_path: Path) -> None:
    rows = _rows()
    writer = ArchiveWriter(tmp_path)
    writer.append(rows)
    writer.flush()
    writer.close()
    topic = rows[0].raw.topic
    found = recent_ids(tmp_path, [topic], per_topic=1000)
    assert sorted(found[topic]) == sorted(str(event_id_of(r)) for r in rows)
    assert len(recent_ids(tmp_path, [topic], per_topic=5)[topic]) == 5
    seen = SeenIds()
    seen.remember(topic, found[topic])
    assert seen.fresh([_again(rows[3], 50_000)]) == []


def test_window_must_hold_something() -> None:
    with pytest.raises(ValueError, match="per_topic"):
        SeenIds(0)
