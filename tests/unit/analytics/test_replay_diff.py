"""Replay diff: per topic and key, added / missing / changed with counts and examples (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.replay.diff import (
    DiffEvent,
    DiffOptions,
    DiffOptionsError,
    diff_events,
    field_changes,
)


def _ev(key: str, power: float, topic: str = "site.setpoints", **extra: object) -> DiffEvent:
    record = {"event_id": f"id-{power}-{key}", "event_time": 1, "site_id": key, "kw": power}
    record.update(extra)
    return DiffEvent(topic, key.encode(), record)


def _summary(left: list[DiffEvent], right: list[DiffEvent]) -> list[tuple[str, int, int, int, int]]:
    report = diff_events(left, right)
    return [(t.topic, t.equal, t.missing, t.added, t.changed) for t in report.topics]


CASES = [
    (
        "identical",
        [_ev("a", 1), _ev("a", 2)],
        [_ev("a", 1), _ev("a", 2)],
        [("site.setpoints", 2, 0, 0, 0)],
    ),
    ("one missing", [_ev("a", 1), _ev("a", 2)], [_ev("a", 1)], [("site.setpoints", 1, 1, 0, 0)]),
    ("one added", [_ev("a", 1)], [_ev("a", 1), _ev("a", 3)], [("site.setpoints", 1, 0, 1, 0)]),
    (
        "one changed",
        [_ev("a", 1), _ev("a", 2)],
        [_ev("a", 1), _ev("a", 9)],
        [("site.setpoints", 1, 0, 0, 1)],
    ),
    (
        "changed plus extra",
        [_ev("a", 1), _ev("a", 2)],
        [_ev("a", 5), _ev("a", 6), _ev("a", 7)],
        [("site.setpoints", 0, 0, 1, 2)],
    ),
    (
        "order matters per key",
        [_ev("a", 1), _ev("a", 2)],
        [_ev("a", 2), _ev("a", 1)],
        [("site.setpoints", 1, 1, 1, 0)],
    ),
    (
        "interleaving across keys does not",
        [_ev("a", 1), _ev("b", 2)],
        [_ev("b", 2), _ev("a", 1)],
        [("site.setpoints", 2, 0, 0, 0)],
    ),
    (
        "a key only on the left",
        [_ev("a", 1), _ev("b", 1)],
        [_ev("a", 1)],
        [("site.setpoints", 1, 1, 0, 0)],
    ),
    (
        "topics counted apart",
        [_ev("a", 1, topic="x"), _ev("a", 1, topic="y")],
        [_ev("a", 1, topic="x")],
        [("x", 1, 0, 0, 0), ("y", 0, 1, 0, 0)],
    ),
]


@pytest.mark.parametrize(("name", "left", "right", "expected"), CASES, ids=[c[0] for c in CASES])
def test_diff_table(
    name: str,
    left: list[DiffEvent],
    right: list[DiffEvent],
    expected: list[tuple[str, int, int, int, int]],
) -> None:
    assert _summary(left, right) == expected, name


def test_run_specific_fields_are_ignored_by_default() -> None:
    left = [DiffEvent("t", b"k", {"event_id": "1", "event_time": 10, "ingest_time": None, "v": 1})]
    right = [DiffEvent("t", b"k", {"event_id": "2", "event_time": 99, "ingest_time": 5, "v": 1})]
    assert diff_events(left, right).identical


def test_configured_fields_are_ignored_globally_or_per_topic() -> None:
    left = [_ev("a", 1, command_id="c1"), _ev("a", 1, topic="other", command_id="c1")]
    right = [_ev("a", 1, command_id="c2"), _ev("a", 1, topic="other", command_id="c2")]
    assert not diff_events(left, right).identical
    assert diff_events(left, right, DiffOptions(frozenset({"event_id", "command_id"}))).identical
    per_topic = diff_events(
        left, right, DiffOptions(frozenset({"event_id", "site.setpoints:command_id"}))
    )
    assert [(t.topic, t.identical) for t in per_topic.topics] == [
        ("other", False),
        ("site.setpoints", True),
    ]


def test_changed_examples_name_the_fields() -> None:
    report = diff_events([_ev("a", 1)], [_ev("a", 2)], DiffOptions(max_examples=1))
    (topic,) = report.topics
    (example,) = topic.changed_examples
    assert (example.key, example.left_index, example.right_index) == ("a", 0, 0)
    assert [(c.field, c.left, c.right) for c in example.changes] == [("kw", 1, 2)]
    assert "kw: 1 -> 2" in report.to_text()
    assert report.as_json()["identical"] is False


def test_examples_are_capped_but_counts_are_not() -> None:
    left = [_ev("a", float(i)) for i in range(10)]
    report = diff_events(left, [], DiffOptions(max_examples=3))
    (topic,) = report.topics
    assert topic.missing == 10
    assert [e.left_index for e in topic.missing_examples] == [0, 1, 2]


def test_undecodable_events_compare_by_bytes() -> None:
    left = [DiffEvent("t", None, None, b"\x01")]
    assert diff_events(left, [DiffEvent("t", None, None, b"\x01")]).identical
    report = diff_events(left, [DiffEvent("t", None, None, b"\x02")])
    assert report.topics[0].changed == 1


def test_field_changes_show_absent_fields() -> None:
    assert [(c.field, c.left, c.right) for c in field_changes({"a": 1}, {"b": None})] == [
        ("a", 1, None),
        ("b", None, None),
    ]


@pytest.mark.parametrize("ignore", ["", ":f", "topic:"])
def test_bad_ignore_entries_are_refused(ignore: str) -> None:
    with pytest.raises(DiffOptionsError, match="ignore"):
        DiffOptions(frozenset({ignore}))


_events = st.lists(
    st.builds(
        lambda key, v: DiffEvent("t", key.encode(), {"v": v}),
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 3),
    ),
    max_size=25,
)


@given(_events, _events)
def test_counts_account_for_every_event(left: list[DiffEvent], right: list[DiffEvent]) -> None:
    report = diff_events(left, right)
    assert diff_events(left, left).identical
    for t in report.topics:
        assert t.equal + t.missing + t.changed == t.left_events == len(left)
        assert t.equal + t.added + t.changed == t.right_events == len(right)
