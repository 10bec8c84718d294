"""The bridge's disk thread: group commits, at-most-once claims durable before their future
resolves, the overlay for redeliveries, per-operation failures, the outbox's fsync policy."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.bridge.diskwriter import DiskWriter, DiskWriterClosedError
from edge.bridge.idempotency import CLAIMED, IdempotencyError, IdempotencyStore, Tracking
from edge.bridge.outbox import BULK, CRITICAL, Outbox

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 30))


def on_disk(path: Path, command_id: str) -> str | None:
    """The status a fresh reader (another process after a crash) would find."""
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT status FROM commands WHERE command_id = ?", (command_id,))
        found = row.fetchone()
    return None if found is None else str(found[0])


def test_claim_is_on_disk_when_its_future_resolves(tmp_path: Path) -> None:
    db = tmp_path / "i.sqlite"

    async def body() -> None:
        store = IdempotencyStore(db)
        writer = DiskWriter(store, Outbox(tmp_path / "box", defer_sync=True))
        fut = writer.claim("c1", "s1", T0, T0, Tracking("t", 0, 3))
        # visible at once to the loop (a redelivery in the window is recognised) ...
        staged = store.get("c1")
        assert staged is not None
        assert staged.status == CLAIMED
        assert await fut is None  # None: claimed now, go ahead
        # ... and on disk, for anyone, once the future resolved
        assert on_disk(db, "c1") == CLAIMED
        assert store.position("t", 0) == 3
        await writer.complete(
            "c1", "s1", status="APPLIED", result_event_id="e1", result=b"r", tracking=None
        )
        assert on_disk(db, "c1") == "APPLIED"
        stored = store.get("c1")
        assert stored is not None
        assert (stored.status, stored.result_event_id, stored.result) == ("APPLIED", "e1", b"r")
        await writer.aclose()
        store.close()

    run(body)


def test_many_operations_share_one_commit(tmp_path: Path) -> None:
    async def body() -> None:
        store = IdempotencyStore(tmp_path / "i.sqlite")
        writer = DiskWriter(store)
        gate = threading.Event()
        # hold the disk thread in its first batch so the next 50 queue up behind it
        first = writer.claim("first", "s1", T0, T0)
        orig = store.run_batch

        def slow_batch(ops: Any) -> list[Any]:
            gate.wait(5)
            return orig(ops)

        store.run_batch = slow_batch  # type: ignore[method-assign]  # hold the thread: a gate
        futs = [writer.claim(f"c{i}", "s1", T0, T0) for i in range(50)]
        gate.set()
        await first
        assert await asyncio.gather(*futs) == [None] * 50
        assert writer.stats.jobs == 51
        assert writer.stats.batches < 51  # grouped
        assert writer.stats.max_batch > 1
        assert store.count() == 51
        await writer.aclose()
        store.close()

    run(body)


def test_a_failing_operation_fails_alone(tmp_path: Path) -> None:
    async def body() -> None:
        store = IdempotencyStore(tmp_path / "i.sqlite")
        writer = DiskWriter(store)
        ok = writer.claim("c1", "s1", T0, T0)
        bad = writer.complete("never", "s1", status="APPLIED", result_event_id="e", result=b"")
        ok2 = writer.claim("c2", "s1", T0, T0)
        assert await ok is None
        with pytest.raises(IdempotencyError, match="never claimed"):
            await bad
        assert await ok2 is None
        assert store.get("never") is None  # the failed op's overlay is gone too
        await writer.aclose()
        with pytest.raises(DiskWriterClosedError):
            writer.claim("c3", "s1", T0, T0)
        store.close()

    run(body)


def test_writer_needs_a_deferred_outbox(tmp_path: Path) -> None:
    with (
        IdempotencyStore(tmp_path / "i.sqlite") as store,
        Outbox(tmp_path / "box") as box,
        pytest.raises(ValueError, match="defer_sync"),
    ):
        DiskWriter(store, box)


def test_purge_runs_in_the_disk_thread(tmp_path: Path) -> None:
    async def body() -> None:
        store = IdempotencyStore(tmp_path / "i.sqlite", retention_s=3600)
        writer = DiskWriter(store)
        await writer.claim("old", "s1", T0, T0)
        await writer.claim("new", "s1", T0 + timedelta(hours=2), T0)
        assert await writer.purge(T0 + timedelta(hours=1, seconds=1)) == 1
        assert store.get("old") is None
        assert store.get("new") is not None
        await writer.aclose()
        store.close()

    run(body)


def test_outbox_policy_bulk_fsynced_only_while_unsent(tmp_path: Path) -> None:
    """Kafka keeping up (bulk acknowledged before the sync): no fsync spent on it; records
    still waiting (Kafka down): fsynced. Critical records: fsynced at every group commit."""

    async def body() -> None:
        box = Outbox(tmp_path / "box", defer_sync=True)
        writer = DiskWriter(IdempotencyStore(tmp_path / "i.sqlite"), box)
        lanes = box._lanes  # the policy is about the lanes' unsynced flags
        box.append("t", b"k", "tel-1", b"v", critical=False)
        box.ack(box.pending())  # the broker took it
        await writer.sync(bulk=True)
        assert lanes[BULK].unsynced  # acknowledged before the sync: left alone
        box.append("t", b"k", "tel-2", b"v", critical=False)  # broker down: it waits here
        await writer.sync(bulk=True)
        assert not lanes[BULK].unsynced
        box.append("r", b"k", "res-1", b"v", critical=True)
        assert lanes[CRITICAL].unsynced
        await writer.sync(bulk=False)
        assert not lanes[CRITICAL].unsynced
        await writer.aclose()
        writer.store.close()
        box.close()
        with Outbox(tmp_path / "box") as again:  # acknowledged state persisted at close
            assert [r.event_id for r in again.pending()] == ["tel-2", "res-1"]

    run(body)


@settings(max_examples=25, deadline=None)
@given(
    script=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d", "e"]), st.booleans()), max_size=25
    )
)
def test_each_id_claimed_once_through_the_writer(
    tmp_path_factory: pytest.TempPathFactory, script: list[tuple[str, bool]]
) -> None:
    """Whatever the interleaving of awaits, a command id is granted at most once, and what the
    loop saw (overlay) agrees with what is on disk."""
    path = tmp_path_factory.mktemp("w") / "i.sqlite"

    async def body() -> None:
        store = IdempotencyStore(path)
        writer = DiskWriter(store)
        granted: list[str] = []
        pending: list[asyncio.Future[Any]] = []
        for cid, wait in script:
            if store.get(cid) is not None:  # the bridge's check before claiming
                continue
            granted.append(cid)
            pending.append(writer.claim(cid, "s1", T0, T0))
            if wait:
                await pending[-1]
        assert await asyncio.gather(*pending) == [None] * len(pending)
        await writer.aclose()
        store.close()
        assert sorted(granted) == sorted({c for c, _ in script})
        assert all(on_disk(path, c) == CLAIMED for c in granted)

    run(body)


def test_claims_commit_ahead_of_the_rest_of_their_batch(tmp_path: Path) -> None:
    """A batch holding a claim, a completion and an outbox sync: the claim gets a transaction
    of its own, committed before the completion's and before the outbox fsync."""
    db = tmp_path / "i.sqlite"

    async def body() -> None:
        store = IdempotencyStore(db)
        box = Outbox(tmp_path / "box", defer_sync=True)
        writer = DiskWriter(store, box)
        await writer.claim("c0", "s1", T0, T0)
        gate, entered = threading.Event(), threading.Event()
        log: list[str] = []
        orig_batch, orig_durable = store.run_batch, box.make_durable

        def slow_batch(ops: Any) -> list[Any]:
            entered.set()
            gate.wait(5)
            log.append(f"commit {len(ops)}")
            return orig_batch(ops)

        def durable(*, bulk: bool) -> None:
            log.append(f"fsync c1={on_disk(db, 'c1')}")
            orig_durable(bulk=bulk)

        store.run_batch = slow_batch  # type: ignore[method-assign]  # hold the thread: a gate
        box.make_durable = durable  # type: ignore[method-assign]  # observe the fsync's turn
        hold = writer.purge(T0)  # the thread takes it and waits at the gate: the rest queues
        assert await asyncio.to_thread(entered.wait, 10)  # (on a busy machine it takes a while)
        box.append("r", b"k", "res-0", b"v", critical=True)
        done = writer.complete("c0", "s1", status="APPLIED", result_event_id="e", result=b"r")
        claim = writer.claim("c1", "s1", T0, T0)
        sync = writer.sync(bulk=True)
        gate.set()
        assert await hold == 0
        assert await claim is None
        await asyncio.gather(done, sync)
        assert log == [
            "commit 1",  # the purge
            "fsync c1=None",
            "commit 1",  # the claim alone, first
            "commit 1",  # then the completion
            f"fsync c1={CLAIMED}",  # and only then the outbox
        ]
        assert writer.stats.claim_commits == 2  # c0 at the start, then c1
        assert on_disk(db, "c0") == "APPLIED"
        await writer.aclose()
        store.close()
        box.close()

    run(body)
