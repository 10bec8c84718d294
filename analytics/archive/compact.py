"""Compaction: merge the many small part files of one topic, partition and hour into one.

The archiver writes one file per partition and flush, so a long run leaves thousands of
small files. ``compact`` (run while holding the archive lock, i.e. with the archiver
stopped) rewrites each (topic, hour, partition) that has several files as a single file
covering the union of their offset ranges (every column of every input, merged by name, so
the typed columns survive and older files without them merge with newer ones): written
under a temporary name, fsynced, renamed, and only then are the inputs deleted.

A crash between the rename and the deletes leaves *covered* files: files whose offset range
lies inside another file of the same topic, partition and hour. They hold only duplicates,
so every reader skips them (:func:`live_parts`), and :func:`remove_covered_parts` (run by
``compact`` and at archiver start) deletes them. Resume positions are unaffected either
way: the largest last offset is the same before and after a merge.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from analytics.archive.layout import PartFile, iter_parts, part_path, temp_path

_Group = tuple[str, str, int]  # topic, hour, partition


@dataclass(frozen=True)
class CompactionReport:
    merged_groups: int
    files_before: int
    files_after: int
    removed_covered: int


def _groups(parts: Iterable[PartFile]) -> dict[_Group, list[PartFile]]:
    groups: dict[_Group, list[PartFile]] = defaultdict(list)
    for part in parts:
        groups[(part.topic, part.hour, part.partition)].append(part)
    return groups


def covered_parts(parts: Iterable[PartFile]) -> list[PartFile]:
    """Parts whose offset range lies inside another part of the same topic, hour, partition."""
    covered: list[PartFile] = []
    for group in _groups(parts).values():
        reach = -1  # the largest last offset of the parts seen so far
        for part in sorted(group, key=lambda p: (p.first_offset, -p.last_offset)):
            if part.last_offset <= reach:
                covered.append(part)
            reach = max(reach, part.last_offset)
    return sorted(covered, key=lambda p: p.path)


def live_parts(root: Path, topics: Iterable[str] | None = None) -> list[PartFile]:
    """Every part file a reader should use: all complete parts minus covered ones."""
    parts = list(iter_parts(root, topics))
    dead = {p.path for p in covered_parts(parts)}
    return [p for p in parts if p.path not in dead]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_covered_parts(root: Path) -> list[Path]:
    """Delete the leftovers of an interrupted compaction."""
    removed = []
    for part in covered_parts(iter_parts(root)):
        part.path.unlink()
        removed.append(part.path)
    for directory in {p.parent for p in removed}:
        _fsync(directory)
    return removed


def merge_group(con: duckdb.DuckDBPyConnection, root: Path, group: list[PartFile]) -> Path:
    """Rewrite ``group`` (one topic, hour, partition) as one file; delete the inputs."""
    first = min(p.first_offset for p in group)
    last = max(p.last_offset for p in group)
    sample = group[0]
    final = part_path(
        root, sample.topic, sample.hour, partition=sample.partition, first_offset=first,
        last_offset=last,
    )  # fmt: skip
    tmp = temp_path(final)
    target = str(tmp).replace("'", "''")
    con.execute(
        f"COPY (SELECT * FROM read_parquet(?, hive_partitioning = false, "  # noqa: S608  # escaped path
        f'union_by_name = true) ORDER BY "offset") '
        f"TO '{target}' (FORMAT parquet, COMPRESSION zstd)",
        [[str(p.path) for p in group]],
    )
    _fsync(tmp)
    tmp.replace(final)
    _fsync(final.parent)
    for part in group:
        part.path.unlink()
    _fsync(final.parent)
    return final


def compact(root: Path, min_files: int = 2) -> CompactionReport:
    """Merge every (topic, hour, partition) with at least ``min_files`` files (archiver stopped)."""
    removed = remove_covered_parts(root)
    parts = list(iter_parts(root))
    groups = [g for g in _groups(parts).values() if len(g) >= max(2, min_files)]
    with duckdb.connect() as con:
        for group in groups:
            merge_group(con, root, group)
    after = sum(1 for _ in iter_parts(root))
    return CompactionReport(len(groups), len(parts), after, len(removed))
