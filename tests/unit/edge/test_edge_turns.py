"""Turn-taking on one Modbus connection: queued writes go before queued reads, FIFO within each."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.hal.transport import Turns


async def _grant_order(kinds: list[bool]) -> list[int]:
    """Queue one acquirer per kind (True = write) behind a held turn; the order they get it."""
    turns = Turns()
    order: list[int] = []
    await turns.acquire(write=False)  # a read in flight

    async def take(i: int, write: bool) -> None:
        async with turns.hold(write):
            order.append(i)
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(take(i, w)) for i, w in enumerate(kinds)]
    await asyncio.sleep(0)  # every acquirer is queued now
    turns.release()
    await asyncio.gather(*tasks)
    return order


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        ([], []),
        ([False, False], [0, 1]),
        ([False, True], [1, 0]),
        ([False, False, True, False, True], [2, 4, 0, 1, 3]),
        ([True, True, False], [0, 1, 2]),
    ],
)
def test_writes_overtake_queued_reads(kinds: list[bool], expected: list[int]) -> None:
    assert asyncio.run(_grant_order(kinds)) == expected


@given(st.lists(st.booleans(), max_size=12))
def test_grant_order_is_writes_then_reads_each_fifo(kinds: list[bool]) -> None:
    order = asyncio.run(_grant_order(kinds))
    writes = [i for i, w in enumerate(kinds) if w]
    reads = [i for i, w in enumerate(kinds) if not w]
    assert order == writes + reads


def test_a_cancelled_waiter_does_not_keep_the_turn() -> None:
    async def body() -> None:
        turns = Turns()
        await turns.acquire(write=False)
        waiter = asyncio.create_task(turns.acquire(write=True))
        await asyncio.sleep(0)
        assert turns.waiting_writes == 1
        waiter.cancel()
        turns.release()  # may skip the cancelled waiter or hand it the turn: either way freed
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await asyncio.wait_for(turns.acquire(write=False), 1.0)
        turns.release()

    asyncio.run(body())
