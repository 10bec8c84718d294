"""`flowerhub archive` on a real broker: bad bytes are archived too; SIGTERM flushes and exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from analytics.archive.layout import recover_positions
from analytics.db import connect
from analytics.testing.synthetic import SyntheticLog, synthetic_records
from contract.kafka import clients
from contract.kafka.settings import KafkaSettings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


async def _send(kafka: KafkaSettings, topic: str, values: list[bytes | None]) -> None:
    producer = clients.producer(kafka, enable_idempotence=True)
    await clients.start(producer, kafka)
    try:
        for i, value in enumerate(values):
            await producer.send_and_wait(topic, value=value, key=f"k{i}".encode(), partition=0)
    finally:
        await producer.stop()


def test_sigterm_flushes_everything_including_undecodable_records(
    kafka: KafkaSettings, create_topics: Any, unique_name: Any, tmp_path: Path
) -> None:
    (topic,) = create_topics([unique_name("mixed")], partitions=1)
    good = [r.value for r in synthetic_records(SyntheticLog(sites=1, samples=3, partitions=1))]
    values: list[bytes | None] = [good[0], b"\x07garbage", None, good[1], b"\xc3\x01short"]
    asyncio.run(_send(kafka, topic, values))
    out = tmp_path / "archive"
    command = [
        sys.executable, "-m", "flowerhub.cli", "archive", "--out", str(out),
        "--bootstrap", kafka.bootstrap_servers, "--topics", topic, "--group", unique_name("group"),
        "--flush-records", "100000", "--flush-interval", "600",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdout.readline().startswith("archiving 1 partitions of 1 topics")
    time.sleep(3.0)  # reads the 5 records; nothing flushed yet (huge batch and interval)
    assert process.poll() is None
    assert recover_positions(out) == {}
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=30)  # the rest of the output
    assert process.returncode == 0
    assert "archived 5 records (3 undecodable)" in stdout

    con = connect(out)
    rows = con.execute(
        'SELECT "offset", decode_error, value FROM undecodable ORDER BY "offset"'
    ).fetchall()
    assert rows == [
        (1, "BadMagicError", b"\x07garbage"),
        (2, "Tombstone", None),
        (4, "TruncatedEventError", b"\xc3\x01short"),
    ]
    decoded = con.execute('SELECT "offset", value FROM events ORDER BY "offset"').fetchall()
    assert decoded == [(0, good[0]), (3, good[1])]


def test_a_missing_topic_is_a_clear_error(
    kafka: KafkaSettings, unique_name: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flowerhub.cli import main as flowerhub

    topic = unique_name("absent")
    argv = [
        "archive",
        "--out",
        str(tmp_path),
        "--bootstrap",
        kafka.bootstrap_servers,
        "--topics",
        topic,
    ]
    assert flowerhub(argv) == 2
    assert f"topics missing on {kafka.describe()}: {topic}" in capsys.readouterr().err
