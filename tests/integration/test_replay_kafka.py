"""Replay on a real broker: deterministic bytes and order, pacing at --speed, Kafka source, diff."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from analytics.archive.archiver import codec_decoder
from analytics.archive.rows import Headers, RawRecord, decode_row
from analytics.archive.writer import ArchiveWriter
from analytics.replay.diff import diff_events
from analytics.replay.diff_sources import DiffSide, read_archive_side, read_kafka_side
from analytics.replay.plan import TimeWindow
from analytics.replay.replay import replay_producer
from analytics.replay.run import ReplayRequest, replay
from analytics.replay.sources import kafka_streams
from analytics.testing.synthetic import TELEMETRY_TOPIC, SyntheticLog, synthetic_records
from contract.kafka import clients
from contract.kafka.settings import KafkaSettings
from flowerhub.cli import main as flowerhub

pytestmark = pytest.mark.integration

Copy = dict[int, list[tuple[bytes | None, bytes | None, int, Headers]]]


def _archive(root: Path, log: SyntheticLog) -> list[RawRecord]:
    decoder, errors = codec_decoder()
    records = list(synthetic_records(log))
    writer = ArchiveWriter(root)
    writer.append(decode_row(r, decoder, errors) for r in records)
    writer.flush()
    writer.close()
    return records


def _per_partition(records: list[RawRecord]) -> Copy:
    out: Copy = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        out[r.partition].append((r.key, r.value, r.timestamp_ms, r.headers))
    return dict(out)


def _read(kafka: KafkaSettings, topic: str) -> list[RawRecord]:
    source = asyncio.run(kafka_streams(kafka, [topic], dedupe=False))  # every record stored
    return [r for stream in source.streams for r in stream]


def test_two_replays_of_an_archive_give_the_same_bytes_in_the_same_order(
    kafka: KafkaSettings, unique_name: Any, tmp_path: Path
) -> None:
    log = SyntheticLog(sites=40, samples=25, partitions=3, headers_every=7)
    records = _archive(tmp_path, log)
    assert any(r.headers for r in records)
    copies = []
    for run in ("a", "b"):
        prefix = unique_name(run) + "."
        stats = asyncio.run(replay(ReplayRequest(kafka=kafka, prefix=prefix, log=tmp_path)))
        assert stats.records == len(records)
        copies.append(_read(kafka, prefix + TELEMETRY_TOPIC))
    first, second = copies
    assert _per_partition(first) == _per_partition(second) == _per_partition(records)
    # same partition numbers and offsets as the source: the copy is the log, renamed
    assert sorted((r.partition, r.offset) for r in first) == sorted(
        (r.partition, r.offset) for r in records
    )


def test_a_time_window_replays_only_its_slice(
    kafka: KafkaSettings, unique_name: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = SyntheticLog(sites=5, samples=60, partitions=3, late_every=0)
    records = _archive(tmp_path, log)
    start_ms = log.start_ms + 10_000
    end_ms = log.start_ms + 19_999 + log.kafka_delay_ms
    window = TimeWindow(start_ms, end_ms)
    prefix = unique_name("w") + "."
    iso = [datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat() for ms in (start_ms, end_ms)]
    argv = [
        "replay",
        "--log",
        str(tmp_path),
        "--bootstrap",
        kafka.bootstrap_servers,
        "--prefix",
        prefix,
    ]
    assert flowerhub([*argv, "--from", iso[0], "--to", iso[1], "--max"]) == 0
    inside = [r for r in records if window.contains(r.timestamp_ms)]
    assert len(inside) == 5 * 10
    assert f"replayed {len(inside)} records" in capsys.readouterr().out
    copy = _read(kafka, prefix + TELEMETRY_TOPIC)
    assert sorted(r.value or b"" for r in copy) == sorted(r.value or b"" for r in inside)


def test_speed_keeps_relative_timing(
    kafka: KafkaSettings, unique_name: Any, tmp_path: Path
) -> None:
    # a 2 s trace (21 samples, 100 ms apart) replayed at 2x: 1 s, copies stamped at send time;
    # tolerances allow for a loaded 2-core CI machine
    log = SyntheticLog(sites=2, samples=21, period_ms=100, partitions=1, late_every=0)
    records = _archive(tmp_path, log)
    prefix = unique_name("s") + "."
    request = ReplayRequest(
        kafka=kafka, prefix=prefix, log=tmp_path, speed=2.0, keep_timestamps=False
    )
    stats = asyncio.run(replay(request))
    assert stats.span_s == pytest.approx(2.0)
    assert 1.0 <= stats.wall_s < 1.3
    # Lateness bound leaves room for a loaded 2-core CI machine; pacing itself is
    # unit-tested on a virtual clock.
    assert stats.late_s < 0.35
    copy = _read(kafka, prefix + TELEMETRY_TOPIC)
    assert [r.value for r in copy] == [r.value for r in records]  # one partition: same order
    start, original = copy[0].timestamp_ms, records[0].timestamp_ms
    for sent, source in zip(copy, records, strict=True):
        expected_ms = (source.timestamp_ms - original) / 2.0
        assert abs((sent.timestamp_ms - start) - expected_ms) <= 120


def test_speed_ten_on_a_two_second_trace(
    kafka: KafkaSettings, unique_name: Any, tmp_path: Path
) -> None:
    log = SyntheticLog(sites=3, samples=21, period_ms=100, partitions=2, late_every=0)
    _archive(tmp_path, log)
    request = ReplayRequest(kafka=kafka, prefix=unique_name("x") + ".", log=tmp_path, speed=10.0)
    stats = asyncio.run(replay(request))
    assert 0.2 <= stats.wall_s < 0.45
    # Lateness bound leaves room for a loaded 2-core CI machine; pacing itself is
    # unit-tested on a virtual clock.
    assert stats.late_s < 0.35


async def _produce(kafka: KafkaSettings, topic: str, records: list[RawRecord]) -> None:
    producer = replay_producer(kafka)
    await clients.start(producer, kafka)
    try:
        futures = [
            await producer.send(
                topic,
                value=r.value,
                key=r.key,
                partition=r.partition,
                timestamp_ms=r.timestamp_ms,
                headers=list(r.headers),
            )
            for r in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def test_replay_from_kafka_and_diff_against_the_archive(
    kafka: KafkaSettings,
    create_topics: Any,
    unique_name: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source_prefix = unique_name("src") + "."
    (source_topic,) = create_topics([source_prefix + TELEMETRY_TOPIC], partitions=3)
    log = SyntheticLog(sites=12, samples=20, partitions=3, headers_every=4)
    records = _archive(tmp_path, log)
    # a header with a null value (Kafka keeps it apart from an empty one) must come back null
    records = [
        replace(r, headers=(*r.headers, ("null-valued", None), ("empty", b"")))
        if r.offset % 5 == 0
        else r
        for r in records
    ]
    # at-least-once delivery: three events landed twice (a retry after a lost ack)
    repeats = [records[1], records[7], records[20]]
    asyncio.run(_produce(kafka, source_topic, [*records, *repeats]))
    copy_prefix = unique_name("copy") + "."
    code = flowerhub(
        [
            "replay", "--kafka", "--bootstrap", kafka.bootstrap_servers,
            "--source-prefix", source_prefix,
            "--topics", TELEMETRY_TOPIC, "--prefix", copy_prefix, "--max",
        ]
    )  # fmt: skip
    assert code == 0
    assert "3 repeated event(s) left out (same event id)" in capsys.readouterr().out
    copy = _read(kafka, copy_prefix + TELEMETRY_TOPIC)
    assert _per_partition(copy) == _per_partition(records)  # each event once

    left = read_archive_side(DiffSide("", tmp_path), [TELEMETRY_TOPIC])
    right = asyncio.run(read_kafka_side(DiffSide(copy_prefix), kafka, [TELEMETRY_TOPIC]))
    report = diff_events(left, right)
    assert report.identical
    assert report.topics[0].equal == len(records)
    args = ["replay", "diff", "--bootstrap", kafka.bootstrap_servers, "--topics", TELEMETRY_TOPIC]
    assert flowerhub([*args, "--left", str(tmp_path), "--right", copy_prefix]) == 0
    assert flowerhub([*args, "--left", str(tmp_path), "--right", "kafka:nothing."]) == 1
