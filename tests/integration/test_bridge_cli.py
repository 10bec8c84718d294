"""`flowerhub bridge run --config FILE` as a real process: serves a simulated site, answers a
command, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
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
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
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
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "bridge " in out
        assert (tmp_path / "state" / "idempotency.sqlite").exists()
    finally:
        sims.close()
