"""`flowerhub streams` argument handling and the app's internal topic list (no broker)."""

from __future__ import annotations

import pytest

from contract.topics import TOPICS
from flowerhub.cli import main
from streams.agents.filter_store import changelog_topic
from streams.agents.groups import slices_topic
from streams.agents.leading import election_topic, state_topic
from streams.app import internal_topics, settings_with


def test_internal_topics_are_the_services_and_follow_the_source_partitions() -> None:
    rows = {t.name: t for t in internal_topics("fh-1")}
    settings = settings_with(bootstrap="h:1", app_id="fh-1")
    assert set(rows) == {
        changelog_topic(settings),
        slices_topic(settings),
        election_topic(settings),
        state_topic(settings),
        "fh-1-__assignor-__leader",
    }
    by_name = {t.name: t for t in TOPICS}
    assert rows["fh-1-filter-state-changelog"].partitions == by_name["site.setpoints"].partitions
    assert rows["fh-1-filter-state-changelog"].cleanup_policy == "compact"
    assert rows["fh-1-site-slices"].partitions == by_name["site.telemetry"].partitions
    assert rows["fh-1-site-slices"].cleanup_policy == "delete"
    assert rows["fh-1-leader-state"].cleanup_policy == "compact"
    assert rows["fh-1-leader"].partitions == rows["fh-1-leader-state"].partitions == 1
    assert {t.partitions for t in internal_topics("fh-1", 3)} == {3, 1}


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWERHUB_BOOTSTRAP_SERVERS", "env-host:9092")
    monkeypatch.setenv("FLOWERHUB_APP_ID", "from-env")
    settings = settings_with(bootstrap="flag-host:9093", prefix="t.")
    assert settings.bootstrap_servers == "flag-host:9093"
    assert settings.app_id == "from-env"
    assert settings.topic("site.commands") == "t.site.commands"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["streams", "send", "no.such-topic", "{}"], "unknown topic"),
        (["streams", "send", "market.fleet-setpoints", "[1, 2]"], "JSON must be an object"),
        (["streams", "send", "market.fleet-setpoints", "{not json"], "Expecting property name"),
        (["streams", "send", "market.fleet-setpoints", '{"fleet_id": "f"}'], "FleetSetpoint"),
        (["streams", "worker", "--bootstrap", "no-port"], "not host:port"),
        (["streams", "worker", "--partitions", "0", "--bootstrap", "h:1"], "--partitions"),
        (
            ["streams", "worker", "--replication-factor", "0", "--bootstrap", "h:1"],
            "--replication-factor must be >= 1",
        ),
    ],
)
def test_bad_arguments_are_errors_without_a_traceback(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err
