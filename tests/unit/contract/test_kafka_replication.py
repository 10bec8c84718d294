"""Replication follows the cluster: the rule, its validation, the warning and the fix plan."""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.kafka.admin import (
    ReplicationShortfall,
    create_named_topics,
    min_insync_for,
    reassignment_plan,
    replication_for,
    warn_under_replicated,
)
from contract.kafka.settings import settings_for
from contract.topics import TopicError


@pytest.mark.parametrize(
    ("brokers", "requested", "rf", "isr"),
    [
        (1, None, 1, 1),  # the local single broker
        (2, None, 2, 2),
        (3, None, 3, 2),  # the local cluster, docker-compose: one broker may die
        (5, None, 3, 2),
        (3, 1, 1, 1),  # a flag overrides
        (3, 2, 2, 2),
    ],
)
def test_rule_from_broker_count(brokers: int, requested: int | None, rf: int, isr: int) -> None:
    got = replication_for(brokers, requested)
    assert (got, min_insync_for(got, None)) == (rf, isr)


@pytest.mark.parametrize(
    ("rf", "isr", "says"),
    [
        (0, None, "replication factor must be >= 1"),
        (3, 0, "min.insync.replicas must be >= 1"),
        (2, 3, "min.insync.replicas 3 > replication factor 2"),
    ],
)
def test_bad_overrides_fail_before_connecting(rf: int, isr: int | None, says: str) -> None:
    with pytest.raises(TopicError, match=says):
        asyncio.run(
            create_named_topics(
                settings_for("127.0.0.1:1"),
                ["x"],
                replication_factor=rf,
                min_insync_replicas=isr,
            )
        )


@given(st.integers(1, 50), st.one_of(st.none(), st.integers(1, 5)))
def test_rule_never_exceeds_what_the_cluster_can_hold(brokers: int, isr: int | None) -> None:
    rf = replication_for(brokers, None)
    assert 1 <= rf <= min(3, brokers)
    if isr is None or isr <= rf:
        assert 1 <= min_insync_for(rf, isr) <= rf
    else:
        with pytest.raises(TopicError):
            min_insync_for(rf, isr)


def short(topic: str = "site.telemetry", rf: int = 1, isr: int = 1) -> ReplicationShortfall:
    return ReplicationShortfall(topic, rf, isr, 3, 2, 4)


def test_shortfall_names_what_is_missing_and_the_fix() -> None:
    s = short()
    assert s.describe() == "site.telemetry: replication 1 < 3, min.insync.replicas 1 < 2"
    fixes = s.fix_commands("b:9092")
    assert "kafka-reassign-partitions.sh --bootstrap-server b:9092" in fixes[0]
    assert "flowerhub topics check --bootstrap b:9092 --plan reassign.json" in fixes[0]
    assert fixes[1].endswith("--entity-name site.telemetry --add-config min.insync.replicas=2")
    only_isr = ReplicationShortfall("t", 3, 1, 3, 2, 1)
    assert only_isr.describe() == "t: min.insync.replicas 1 < 2"
    assert len(only_isr.fix_commands("b:1")) == 1


def test_warning_per_topic_with_its_fix(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.replication")
    with caplog.at_level(logging.WARNING, logger="test.replication"):
        n = warn_under_replicated(
            logger, "bridge b1", settings_for("b:9092"), [short("a"), short("b")]
        )
    assert n == 2
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["bridge b1"] * 2
    assert "topic a: replication 1 < 3" in caplog.records[0].getMessage()
    assert "kafka-configs.sh" in caplog.records[0].getMessage()


@given(
    st.lists(st.integers(0, 9), min_size=1, max_size=5, unique=True),
    st.integers(1, 6),
    st.integers(1, 3),
)
def test_plan_keeps_replicas_and_adds_distinct_brokers(
    brokers: list[int], partitions: int, want: int
) -> None:
    layout = {"t": {p: [brokers[p % len(brokers)]] for p in range(partitions)}}
    s = ReplicationShortfall("t", 1, 1, want, min(2, want), partitions)
    plan = reassignment_plan([s], brokers, layout)
    assert plan["version"] == 1
    if want <= 1:
        assert plan["partitions"] == []
        return
    assert [p["partition"] for p in plan["partitions"]] == list(range(partitions))
    for entry in plan["partitions"]:
        replicas = entry["replicas"]
        assert replicas[0] == layout["t"][entry["partition"]][0]  # the leader stays first
        assert len(replicas) == len(set(replicas)) == min(want, len(brokers))
        assert set(replicas) <= set(brokers)
