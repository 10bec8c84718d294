"""`flowerhub broker stop` and `start` on the same data directory under running services:
the brokers come back on the same ports and the bridge, the streams worker and the archiver
resume by themselves, without a restart (issue 15). Its own single-node broker."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from analytics.db import connect
from contract.codec import encode
from contract.kafka import clients
from contract.kafka.settings import KafkaSettings, settings_for
from edge.bridge.sink import BridgeTopics
from edge.testing.harness import SimBridge, SimSpec, read_events
from flowerhub.broker.launcher import start_cluster, stop_cluster
from flowerhub.broker.state import processes_using
from streams.settings import StreamsSettings
from streams.steps.ids import command_id_for
from streams.testing.agents import setpoint_record
from streams.worker_process import streams_worker

pytestmark = pytest.mark.integration


def wait_until(
    pred: Callable[[], bool], timeout: float, what: str, detail: Callable[[], str] = str
) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{detail()}")
        time.sleep(0.3)


def archived_after(archive: Path, since_us: int) -> int:
    con = connect(archive)
    try:
        row = con.execute(
            "SELECT count(*) FROM site_telemetry WHERE epoch_us(event_time) > ?", [since_us]
        ).fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


async def _order(kafka: KafkaSettings, topic: str, sites: list[str], tag: str) -> None:
    now = time.time_ns() // 1000
    async with clients.running(clients.producer(kafka), kafka) as producer:
        for s in sites:
            value = encode(
                "SiteSetpoint", setpoint_record(s, f"{tag}-{s}", now, 1.5, now + 600_000_000)
            )
            await producer.send_and_wait(topic, value=value, key=s.encode())


def test_services_resume_after_a_broker_stop_and_start(tmp_path: Path) -> None:
    data = tmp_path / "kafka"
    first = start_cluster(1, data)
    prefix = f"restart-{uuid.uuid4().hex[:6]}."
    kafka = settings_for(first.bootstrap)
    sites = ["r1", "r2"]
    settings = StreamsSettings(
        bootstrap_servers=first.bootstrap,
        app_id=f"restart-{uuid.uuid4().hex[:6]}",
        topic_prefix=prefix,
    )
    archive = tmp_path / "archive"
    try:
        with streams_worker(settings, tmp_path, partitions=1) as worker:
            archiver_log = tmp_path / "archiver.log"
            log = archiver_log.open("wb")
            archiver = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "flowerhub.cli",
                    "archive",
                    "--bootstrap",
                    first.bootstrap,
                    "--prefix",
                    prefix,
                    "--out",
                    str(archive),
                    "--flush-interval",
                    "0.5",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
            h = SimBridge(
                [SimSpec(s, "huawei") for s in sites],
                kafka=kafka,
                state=tmp_path / "bridge",
                topics=BridgeTopics(prefix=prefix),
                telemetry_interval_s=0.5,
            )
            try:
                with h:
                    bridge = h.bridge
                    assert bridge is not None
                    wait_until(lambda: bridge.stats.sent > 5, 30, "telemetry to flow")
                    # the archiver is up first (it refuses to start without a broker)
                    wait_until(lambda: any(archive.rglob("part-*")), 60, "a part file")
                    stop_cluster(data)
                    time.sleep(3.0)
                    second = start_cluster(1, data)
                    assert second.bootstrap == first.bootstrap  # the same ports
                    back = time.time_ns() // 1000
                    sent = bridge.stats.sent
                    wait_until(lambda: bridge.stats.sent > sent + 5, 60, "the bridge to resume")
                    wait_until(
                        lambda: archived_after(archive, back) > 5,
                        60,
                        "the archiver to resume",
                        lambda: (
                            f"archiver {'running' if archiver.poll() is None else 'exited'}"
                            f", log tail:\n{archiver_log.read_text(errors='replace')[-4000:]}"
                        ),
                    )
                    # the worker: a setpoint after the restart becomes a command the sites apply
                    asyncio.run(_order(kafka, prefix + "site.setpoints", sites, "after"))
                    wanted = {command_id_for(s, f"after-{s}") for s in sites}

                    def answered(recs: list[dict[str, object]]) -> bool:
                        return wanted <= {str(r["command_id"]) for r in recs}

                    results = asyncio.run(
                        read_events(kafka, h.topics.for_event("CommandResult"), answered, 90)
                    )
                    assert wanted <= {str(r["command_id"]) for r in results}
                    worker.check_alive()
                    assert archiver.poll() is None, "the archiver exited"
            finally:
                archiver.send_signal(signal.SIGTERM)
                archiver.wait(30)
                log.close()
    finally:
        stop_cluster(data)
    assert processes_using(data) == []
