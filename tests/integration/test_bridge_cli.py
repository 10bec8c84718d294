"""`flowerhub bridge run --config FILE` as a real process: serves a simulated site, answers a
command, serves /metrics (``--metrics-port 0``: it prints where), stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from contract.enums import CommandKind
from contract.kafka.admin import create_named_topics_sync as create_topics
from contract.kafka.settings import KafkaSettings
from contract.testing.metrics import scrape
from edge.bridge.sink import BridgeTopics
from edge.testing.harness import SimBridge, SimSpec, new_command, produce_commands, read_events

pytestmark = pytest.mark.integration


def test_bridge_run_cli_serves_a_site(kafka: KafkaSettings, tmp_path: Path) -> None:
    topics = BridgeTopics(prefix=f"cli-{uuid.uuid4().hex[:8]}.")
    create_topics(kafka, [topics.command_topic, *topics.outgoing()], 1)
    sims = SimBridge([SimSpec("cli1", "huawei")], kafka=kafka, state=tmp_path, topics=topics)
    sims.start_sims()
    try:
        config = sims.config().model_dump(mode="json")
        path = tmp_path / "bridge.yaml"
        path.write_text(yaml.safe_dump(config))
        args = [sys.executable, "-m", "flowerhub.cli", "bridge", "run", "--config", str(path)]
        args += ["--topic-prefix", topics.prefix, "--log-level", "WARNING"]
        args += ["--metrics-port", "0"]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            printed = [proc.stdout.readline(), proc.stdout.readline()]  # start, then metrics
            found = re.search(r"metrics at (http://127\.0\.0\.1:\d+/metrics)", printed[1])
            assert found, printed
            url = found.group(1)
            cmd = new_command("cli1", CommandKind.SET_POWER, 1.5)
            asyncio.run(produce_commands(kafka, topics.command_topic, [cmd]))

            def done(recs: list[dict[str, Any]]) -> bool:
                return any(r["command_id"] == cmd.command_id for r in recs)

            topic = topics.for_event("CommandResult")
            recs = asyncio.run(read_events(kafka, topic, done, 60.0))
            got = [r for r in recs if r["command_id"] == cmd.command_id]
            assert got, "no CommandResult from the bridge process"
            assert got[0]["status"] == "APPLIED"
            assert sims.do(lambda: len(sims.sims["cli1"].write_log)) >= 1
            page = scrape(url)  # the process's own page, parsed by prometheus_client
            assert page.value("flowerhub_bridge_command_latency_seconds_count", oem="huawei") == 1
            assert page.value("flowerhub_modbus_requests_total", oem="huawei") > 0
            assert page.value("flowerhub_bridge_sites", oem="huawei", state="ONLINE") == 1
            assert page.samples("flowerhub_outbox_events")
            assert page.value("process_resident_memory_bytes") > 0
        finally:
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "bridge " in printed[0]
        assert (tmp_path / "state" / "idempotency.sqlite").exists()
    finally:
        sims.close()
