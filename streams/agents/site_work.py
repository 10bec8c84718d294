"""The per-cycle state of :class:`streams.agents.site_tasks.SiteTasks`: the telemetry and
setpoint partitions a worker owns now, one cycle's outputs and offsets, and two small helpers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.steps import slices
from streams.steps.filter_partition import FilterOutcome, FilterPartition
from streams.steps.site_partition import PartitionTelemetry


@dataclass
class OwnedTelemetry:
    """One owned telemetry partition and the wall time of its last progress."""

    telemetry: PartitionTelemetry
    moved_at: int  # wall micros when a record (not a watermark) last moved its clock
    record_clock: int | None = None  # its clock then
    published: tuple[Any, ...] | None = None
    published_at: int = 0
    watermark_sent: int | None = None  # the last watermark written (until read back)
    watermark_sent_at: int = 0  # wall micros


@dataclass
class OwnedFilter:
    partition: FilterPartition
    input_at: int  # wall micros of its last setpoint (or restore)
    input_clock: int | None = None


@dataclass
class CycleBatch:
    """One cycle's outputs and offsets."""

    slices: list[tuple[int, slices.SliceRecord, int]] = field(default_factory=list)
    watermarks: list[tuple[int, int]] = field(default_factory=list)  # (partition, instant)
    filtered: list[tuple[int, FilterOutcome]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    commits: dict[Any, int] = field(default_factory=dict)
    read: Counter[str] = field(default_factory=Counter)  # records read, by topic


def no_limits(site_id: str, at: int) -> None:
    return None


def describe_partitions(tps: Iterable[Any], telemetry_topic: str) -> str:
    parts = sorted(tp.partition for tp in tps if tp.topic == telemetry_topic)
    return f"partitions {parts}" if parts else "no telemetry partition"
