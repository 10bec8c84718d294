"""SIGTERM with the broker frozen (SIGSTOP): every service exits within its stated bound and
what it could not deliver stays on disk, named in its log (issue 15).

Its own single-node broker (it is frozen), never the session one. Services: the streams
worker (``flowerhub streams worker``, a process: bound ``streams.shutdown.WORKER_STOP_S``),
the archiver (``flowerhub archive``, a process: ``ARCHIVER_STOP_S``) and a bridge serving two
simulated sites (in-process, the same stop path as ``flowerhub bridge run``:
``edge.bridge.runtime.STOP_BOUND_S``) and the operations view (``flowerhub ui``, a process:
``flowerhub.ui.run.UI_STOP_S``), all on the same topics.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from analytics.archive.archiver import STOP_BOUND_S as ARCHIVER_STOP_S
from contract.kafka.settings import settings_for
from edge.bridge.outbox import Outbox
from edge.bridge.runtime import STOP_BOUND_S as BRIDGE_STOP_S
from edge.bridge.sink import BridgeTopics
from edge.testing.harness import SimBridge, SimSpec
from flowerhub.broker.launcher import local_cluster
from flowerhub.ui.run import UI_STOP_S
from streams.settings import StreamsSettings
from streams.shutdown import EXIT_FORCED, WORKER_STOP_S
from streams.worker_process import streams_worker

pytestmark = pytest.mark.integration

SLACK_S = 3.0  # process exit and interpreter teardown on a loaded 2-core machine


def wait_until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def wait_exits(
    procs: dict[str, subprocess.Popen[bytes]], began: float, timeout: float
) -> dict[str, tuple[int | None, float]]:
    """Exit status and seconds since ``began`` of each process (None: still running)."""
    out: dict[str, tuple[int | None, float]] = {}
    while len(out) < len(procs) and time.monotonic() - began < timeout:
        for name, proc in procs.items():
            if name not in out and proc.poll() is not None:
                out[name] = (proc.returncode, time.monotonic() - began)
        time.sleep(0.05)
    for name in procs:
        out.setdefault(name, (None, time.monotonic() - began))
    return out


def test_every_service_stops_within_its_bound_with_the_broker_frozen(tmp_path: Path) -> None:
    prefix = f"frozen-{uuid.uuid4().hex[:6]}."
    with local_cluster(1, tmp_path / "kafka") as cluster:
        kafka = settings_for(cluster.bootstrap)
        broker_pid = cluster.nodes[0].pid
        settings = StreamsSettings(
            bootstrap_servers=cluster.bootstrap,
            app_id=f"frozen-{uuid.uuid4().hex[:6]}",
            topic_prefix=prefix,
        )
        frozen = False
        with streams_worker(settings, tmp_path, partitions=1) as worker:  # creates the topics
            archive_log = (tmp_path / "archiver.log").open("wb")
            archiver = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "flowerhub.cli",
                    "archive",
                    "--bootstrap",
                    cluster.bootstrap,
                    "--prefix",
                    prefix,
                    "--out",
                    str(tmp_path / "archive"),
                    "--flush-interval",
                    "0.5",
                ],
                stdout=archive_log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
            ui_log = (tmp_path / "ui.log").open("wb")
            ui = subprocess.Popen(
                [sys.executable, "-m", "flowerhub.cli", "ui", "--bootstrap", cluster.bootstrap,
                 "--prefix", prefix, "--port", "0"],
                stdout=ui_log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )  # fmt: skip
            h = SimBridge(
                [SimSpec("f1", "huawei"), SimSpec("f2", "sungrow")],
                kafka=kafka,
                state=tmp_path / "bridge",
                topics=BridgeTopics(prefix=prefix),
                telemetry_interval_s=0.2,
            )
            try:
                with h:
                    bridge = h.bridge
                    assert bridge is not None
                    wait_until(lambda: bridge.stats.sent > 10, 30, "telemetry to flow")
                    wait_until(
                        lambda: any((tmp_path / "archive").rglob("part-*")), 30, "a part file"
                    )
                    wait_until(
                        lambda: "serving" in (tmp_path / "ui.log").read_text(errors="replace"),
                        60,
                        "the UI to serve",
                    )
                    os.kill(broker_pid, signal.SIGSTOP)
                    frozen = True
                    time.sleep(2.0)  # records pile up in the outbox meanwhile
                    began = time.monotonic()
                    worker.proc.send_signal(signal.SIGTERM)
                    archiver.send_signal(signal.SIGTERM)
                    ui.send_signal(signal.SIGTERM)
                    h.stop_bridge()
                    bridge_s = time.monotonic() - began
                    depth = bridge.outbox.depth
                    exits = wait_exits(
                        {"worker": worker.proc, "archiver": archiver, "ui": ui},
                        began,
                        max(WORKER_STOP_S, ARCHIVER_STOP_S, UI_STOP_S) + SLACK_S + 5,
                    )
                    (worker_rc, worker_s), (archiver_rc, archiver_s) = (
                        exits["worker"],
                        exits["archiver"],
                    )
                    ui_rc, ui_s = exits["ui"]
            finally:
                if frozen:
                    os.kill(broker_pid, signal.SIGCONT)
                for proc in (archiver, ui):
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                archive_log.close()
                ui_log.close()
            worker_log = worker.log()
        archiver_log = (tmp_path / "archiver.log").read_text(errors="replace")

    print(  # noqa: T201  # shown with -s: the measured stop times
        f"stop with the broker frozen: bridge {bridge_s:.1f} s (bound {BRIDGE_STOP_S:g}), "
        f"worker {worker_s:.1f} s rc {worker_rc} (bound {WORKER_STOP_S:g}), "
        f"archiver {archiver_s:.1f} s (bound {ARCHIVER_STOP_S:g}), "
        f"ui {ui_s:.1f} s (bound {UI_STOP_S:g}), outbox kept {depth}"
    )
    assert bridge_s <= BRIDGE_STOP_S + SLACK_S, f"bridge stopped after {bridge_s:.1f} s"
    assert worker_s <= WORKER_STOP_S + SLACK_S, f"worker stopped after {worker_s:.1f} s"
    assert worker_rc in (0, EXIT_FORCED), worker_log[-3000:]
    if worker_rc == EXIT_FORCED:
        assert "graceful stop not done within" in worker_log
    assert archiver_s <= ARCHIVER_STOP_S + SLACK_S, f"archiver stopped after {archiver_s:.1f} s"
    assert archiver_rc == 0, archiver_log[-3000:]
    ui_text = (tmp_path / "ui.log").read_text(errors="replace")
    assert ui_s <= UI_STOP_S + SLACK_S, f"UI stopped after {ui_s:.1f} s:\n{ui_text[-3000:]}"
    assert ui_rc == 0, ui_text[-3000:]

    # the bridge's undelivered events are on disk, whole, and were named in its log
    assert depth > 0
    box = Outbox(tmp_path / "bridge" / "outbox")
    try:
        kept = box.pending(100_000)
        assert len(kept) == depth
        assert box.torn_bytes == 0
        assert {r.topic for r in kept} <= set(BridgeTopics(prefix=prefix).outgoing())
    finally:
        box.close()
