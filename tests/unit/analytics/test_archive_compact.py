"""Compaction: many small part files become one per topic, hour and partition; crash-safe."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from analytics.archive.archiver import archive_lock, codec_decoder
from analytics.archive.compact import compact, covered_parts, live_parts, remove_covered_parts
from analytics.archive.layout import PartFile, iter_parts, recover_positions
from analytics.archive.rows import decode_row
from analytics.archive.writer import ArchiveWriter
from analytics.db import connect
from analytics.replay.plan import merge_streams
from analytics.replay.sources import archive_streams
from analytics.testing.synthetic import SyntheticLog, synthetic_records
from flowerhub.cli import main as flowerhub

LOG = SyntheticLog(sites=4, samples=40, period_ms=360_000, partitions=2)  # 4 hours


def _archive_in_small_flushes(root: Path, every: int = 7) -> int:
    decoder, errors = codec_decoder()
    rows = [decode_row(r, decoder, errors) for r in synthetic_records(LOG)]
    writer = ArchiveWriter(root)
    for start in range(0, len(rows), every):
        writer.append(rows[start : start + every])
        writer.flush()
    writer.close()
    return len(rows)


def _count(root: Path) -> tuple[int, int]:
    con = connect(root)
    row = con.execute('SELECT count(*), count(DISTINCT ("partition", "offset")) FROM archive_rows')
    result = row.fetchone()
    assert result is not None
    return int(result[0]), int(result[1])


def _replayed(root: Path) -> list[tuple[int, int]]:
    with duckdb.connect() as con:
        items = merge_streams(archive_streams(con, root).streams)
        return sorted((s.record.partition, s.record.offset) for s in items)


def test_compaction_merges_files_and_keeps_every_row_once(tmp_path: Path) -> None:
    total = _archive_in_small_flushes(tmp_path)
    before = list(iter_parts(tmp_path))
    positions = recover_positions(tmp_path)
    replayed = _replayed(tmp_path)
    report = compact(tmp_path)
    after = list(iter_parts(tmp_path))
    groups = {(p.topic, p.hour, p.partition) for p in before}
    assert len(after) == len(groups) == report.files_after < report.files_before == len(before)
    assert _count(tmp_path) == (total, total)
    assert recover_positions(tmp_path) == positions
    assert _replayed(tmp_path) == replayed
    assert compact(tmp_path).merged_groups == 0  # idempotent


def test_an_interrupted_compaction_leaves_only_ignored_duplicates(tmp_path: Path) -> None:
    total = _archive_in_small_flushes(tmp_path)
    replayed = _replayed(tmp_path)
    saved = {p.path: p.path.read_bytes() for p in iter_parts(tmp_path)}
    compact(tmp_path)
    for path, data in list(saved.items())[:5]:  # crash after the rename, before the deletes
        path.write_bytes(data)
    assert len(covered_parts(iter_parts(tmp_path))) == 5
    assert _count(tmp_path) == (total, total)  # the views skip covered files
    assert _replayed(tmp_path) == replayed  # so does replay
    assert len(live_parts(tmp_path)) == len(list(iter_parts(tmp_path))) - 5
    assert len(remove_covered_parts(tmp_path)) == 5
    assert covered_parts(iter_parts(tmp_path)) == []


def _part(first: int, last: int, hour: str = "h", partition: int = 0) -> PartFile:
    return PartFile(
        Path(f"/a/{hour}/{partition}/{first}-{last}"), "t", hour, partition, first, last
    )


@pytest.mark.parametrize(
    ("ranges", "covered"),
    [
        ([(0, 9), (10, 19)], []),
        ([(0, 19), (0, 9), (10, 19)], [(0, 9), (10, 19)]),
        ([(0, 19), (5, 7)], [(5, 7)]),
        ([(0, 9), (5, 19)], []),  # overlapping, neither inside the other: both kept
    ],
)
def test_covered_parts(ranges: list[tuple[int, int]], covered: list[tuple[int, int]]) -> None:
    found = covered_parts([_part(a, b) for a, b in ranges])
    assert sorted((p.first_offset, p.last_offset) for p in found) == sorted(covered)


def test_covering_is_per_hour_and_partition() -> None:
    parts = [_part(0, 19, hour="h1"), _part(5, 7, hour="h2"), _part(5, 7, partition=1)]
    assert covered_parts(parts) == []


def test_the_cli_compacts_under_the_archive_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _archive_in_small_flushes(tmp_path, every=50)
    groups = len({(p.topic, p.hour, p.partition) for p in iter_parts(tmp_path)})
    assert flowerhub(["archive", "--out", str(tmp_path), "--compact"]) == 0
    assert f"-> {groups} files" in capsys.readouterr().out
    with archive_lock(tmp_path):  # held by a running archiver: compaction refuses
        assert flowerhub(["archive", "--out", str(tmp_path), "--compact"]) == 2
    assert "another archiver" in capsys.readouterr().err
