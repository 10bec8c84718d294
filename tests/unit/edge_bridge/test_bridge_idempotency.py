"""Idempotency store: claim once, survive reopen, tracking in the same transaction, purge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.bridge.idempotency import CLAIMED, IdempotencyError, IdempotencyStore, Tracking

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_claim_complete_and_reopen(tmp_path: Path) -> None:
    db = tmp_path / "state" / "idem.sqlite"
    with IdempotencyStore(db) as store:
        assert store.claim("c1", "s1", T0, T0, Tracking("site.commands", 0, 7)) is None
        again = store.claim("c1", "s1", T0, T0)
        assert again is not None
        assert again.status == CLAIMED
        assert not again.completed
        store.complete("c1", "APPLIED", "ev-1", b"result", Tracking("site.commands", 0, 7))
    with IdempotencyStore(db) as store:
        stored = store.claim("c1", "s1", T0, T0)
        assert stored is not None
        assert (stored.status, stored.result_event_id, stored.result) == (
            "APPLIED",
            "ev-1",
            b"result",
        )
        assert stored.completed
        assert store.position("site.commands", 0) == 7
        assert store.position("site.commands", 1) is None


def test_crash_between_claim_and_complete_never_reopens(tmp_path: Path) -> None:
    db = tmp_path / "idem.sqlite"
    store = IdempotencyStore(db)
    assert store.claim("c1", "s1", T0, T0) is None
    store.close()  # crash: no complete()
    with IdempotencyStore(db) as store2:
        stored = store2.claim("c1", "s1", T0, T0)
        assert stored is not None
        assert stored.status == CLAIMED


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.complete("never", "APPLIED", "e", b""), "never claimed"),
        (lambda s: s.complete("c1", CLAIMED, "e", b""), "final status"),
    ],
)
def test_misuse_raises(tmp_path: Path, call: object, message: str) -> None:
    with IdempotencyStore(tmp_path / "i.sqlite") as store:
        store.claim("c1", "s1", T0, T0)
        with pytest.raises(IdempotencyError, match=message):
            call(store)  # type: ignore[operator]  # lambdas from the table
        # a failed complete leaves the row and the tracking untouched
        assert store.get("c1") is not None
        assert store.position("t", 0) is None


def test_bad_retention() -> None:
    with pytest.raises(IdempotencyError, match="retention"):
        IdempotencyStore(":memory:", retention_s=0)


def test_tracking_offset_only_moves_forward(tmp_path: Path) -> None:
    with IdempotencyStore(tmp_path / "i.sqlite") as store:
        store.claim("a", "s1", T0, T0, Tracking("t", 0, 10))
        store.claim("b", "s1", T0, T0, Tracking("t", 0, 4))
        assert store.position("t", 0) == 10


def test_purge_by_validity(tmp_path: Path) -> None:
    with IdempotencyStore(tmp_path / "i.sqlite", retention_s=3600) as store:
        store.claim("old", "s1", T0, T0)
        store.claim("new", "s1", T0 + timedelta(hours=2), T0)
        assert store.purge(T0 + timedelta(hours=1, seconds=1)) == 1
        assert store.get("old") is None
        assert store.get("new") is not None
        assert store.count() == 1


@settings(max_examples=30, deadline=None)
@given(ids=st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=20))
def test_each_id_claimed_once(tmp_path_factory: pytest.TempPathFactory, ids: list[str]) -> None:
    path = tmp_path_factory.mktemp("idem") / "i.sqlite"
    with IdempotencyStore(path) as store:
        granted = [i for i in ids if store.claim(i, "s1", T0, T0) is None]
    assert sorted(granted) == sorted(set(ids))
