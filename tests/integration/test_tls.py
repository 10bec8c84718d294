"""TLS and SASL end to end on one local broker started with ``--tls`` (throwaway CA).

- an edge bridge (a simulated inverter behind it) takes a command and reports its result
  over SASL_SSL (PLAIN over TLS), while the archiver archives the bridge's events over SSL
  with a client certificate (mutual TLS): every client from ``contract.kafka``;
- the verbs find the local broker's TLS settings by themselves (``topics create`` with no
  connection flag at all);
- a CA that did not sign the broker's certificate, a wrong password: refused at once, with
  the reason and the setting to check, and no password in any output.

One broker for the module (about 7 s to start), always stopped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analytics.archive.archiver import Archiver, ArchiverConfig, ArchiverStats
from contract.enums import CommandKind
from contract.kafka.admin import create_named_topics_sync
from contract.kafka.settings import KafkaSettings, SecurityProtocol
from edge.bridge.sink import BridgeTopics
from edge.testing.harness import SimBridge, SimSpec, new_command, produce_commands, read_events
from flowerhub.broker.launcher import local_cluster
from flowerhub.broker.state import ClusterState, kafka_settings
from flowerhub.broker.tls import write_ca
from flowerhub.cli import main as flowerhub

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterState]:
    home = tmp_path_factory.mktemp("kafka-home")  # FLOWERHUB_KAFKA_HOME of the CLI test
    with local_cluster(1, home / "run" / "tls", tls=True) as state:
        yield state


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tls_broker: ClusterState) -> None:
    """The CLI as a user with no connection settings, whose local broker is ``tls_broker``."""
    for name in list(os.environ):
        if name.startswith("FLOWERHUB_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)
    monkeypatch.setenv("FLOWERHUB_KAFKA_HOME", str(Path(tls_broker.data_dir).parents[1]))


def test_a_bridge_over_sasl_ssl_and_the_archiver_over_mutual_tls(
    tls_broker: ClusterState, tmp_path: Path
) -> None:
    sasl = kafka_settings(tls_broker, SecurityProtocol.SASL_SSL)
    mtls = kafka_settings(tls_broker, SecurityProtocol.SSL)
    assert sasl.bootstrap_servers != tls_broker.bootstrap != mtls.bootstrap_servers
    topics = BridgeTopics(prefix=f"tls-{uuid.uuid4().hex[:8]}.")
    create_named_topics_sync(sasl, [topics.command_topic, *topics.outgoing()], 1)
    with SimBridge(
        [SimSpec("tls1", "sungrow")], kafka=sasl, state=tmp_path / "bridge", topics=topics
    ) as fleet:
        cmd = new_command("tls1", CommandKind.SET_POWER, 2.0)
        asyncio.run(produce_commands(sasl, topics.command_topic, [cmd]))

        def done(records: list[dict[str, Any]]) -> bool:
            return any(r["command_id"] == cmd.command_id for r in records)

        results = asyncio.run(
            read_events(sasl, topics.for_event("CommandResult"), done, timeout_s=60.0)
        )
        assert [r["status"] for r in results if r["command_id"] == cmd.command_id] == ["APPLIED"]
        assert fleet.do(lambda: len(fleet.sims["tls1"].write_log)) >= 1
        assert fleet.bridge is not None
        assert fleet.bridge.stats.sent >= 1

    config = ArchiverConfig(
        out=tmp_path / "archive",
        kafka=mtls,
        topics=(topics.for_event("CommandResult"), topics.telemetry_topic()),
        group_id=f"tls-archiver-{uuid.uuid4().hex[:8]}",
        flush_interval_s=0.2,
    )

    async def archive() -> ArchiverStats:
        run = Archiver(config).run(until=lambda s: s.archived >= 2)
        return await asyncio.wait_for(run, 60.0)

    stats = asyncio.run(archive())
    assert stats.archived >= 2
    assert stats.undecodable == 0


def test_the_cli_finds_the_local_tls_broker_by_itself(
    cli_env: None, capsys: pytest.CaptureFixture[str], tls_broker: ClusterState
) -> None:
    prefix = f"tls-cli-{uuid.uuid4().hex[:8]}."
    assert flowerhub(["topics", "create", "--prefix", prefix, "--partitions", "1"]) == 0
    out = capsys.readouterr().out
    assert f"created   {prefix}site.telemetry" in out
    password = Path(kafka_settings(tls_broker).sasl_password_file or "").read_text()
    assert password.strip() not in out


def test_a_wrong_ca_and_a_wrong_password_are_refused_with_the_reason(
    cli_env: None,
    tls_broker: ClusterState,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sasl: KafkaSettings = kafka_settings(tls_broker, SecurityProtocol.SASL_SSL)
    other_ca = write_ca(tmp_path / "other-ca.pem", "not the broker's CA")
    connect = ["--bootstrap", sasl.bootstrap_servers, "--security-protocol", "SASL_SSL"]
    connect += ["--sasl-mechanism", "PLAIN", "--sasl-username", "flowerhub"]
    archive = ["archive", "--out", str(tmp_path / "archive"), "--topics", "any"]

    wrong_password = "not-the-password-0123456789"  # noqa: S105  # a test value
    (tmp_path / "wrong").write_text(wrong_password)
    with caplog.at_level(logging.DEBUG):
        password_file = ["--sasl-password-file", str(sasl.sasl_password_file)]
        code = flowerhub([*archive, *connect, "--ssl-cafile", str(other_ca), *password_file])
        assert code == 2
        err = capsys.readouterr().err
        assert "does not vouch for" in err
        assert "check ssl_cafile (--ssl-cafile / FLOWERHUB_SSL_CAFILE)" in err
        assert "Traceback" not in err

        wrong_file = ["--sasl-password-file", str(tmp_path / "wrong")]
        code = flowerhub([*archive, *connect, "--ssl-cafile", str(sasl.ssl_cafile), *wrong_file])
        assert code == 2
        err += capsys.readouterr().err
        assert "SASL PLAIN as 'flowerhub' refused" in err
        assert "Authentication failed" in err
    secrets = (wrong_password, Path(sasl.sasl_password_file or "").read_text().strip())
    for secret in secrets:
        assert secret not in err
        assert secret not in caplog.text
