"""cancel_and_wait: a task that swallows cancellations cannot hang the bridge's stop."""

from __future__ import annotations

import asyncio

import pytest

from edge.bridge.shutdown import cancel_and_wait


async def _forever() -> None:
    await asyncio.Event().wait()


async def _swallows(times: int, log: list[str]) -> None:
    while True:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            log.append("swallowed")
            if len(log) > times:
                raise


async def _immortal() -> None:
    while True:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            continue


def test_plain_tasks_stop_at_once() -> None:
    async def main() -> list[str]:
        tasks = [asyncio.create_task(_forever(), name=f"t{i}") for i in range(3)]
        await asyncio.sleep(0)
        left = await cancel_and_wait(tasks, grace_s=5.0, round_s=0.05)
        assert all(t.cancelled() for t in tasks)
        return left

    assert asyncio.run(main()) == []


def test_a_task_that_swallows_two_cancellations_is_cancelled_again() -> None:
    log: list[str] = []

    async def main() -> list[str]:
        task = asyncio.create_task(_swallows(2, log), name="swallower")
        await asyncio.sleep(0)
        return await cancel_and_wait([task], grace_s=5.0, round_s=0.01)

    assert asyncio.run(main()) == []
    assert log == ["swallowed"] * 3


def test_an_immortal_task_is_named_after_the_grace_period() -> None:
    async def main() -> tuple[list[str], float]:
        loop = asyncio.get_running_loop()
        immortal = asyncio.create_task(_immortal(), name="immortal")
        plain = asyncio.create_task(_forever(), name="plain")
        await asyncio.sleep(0)
        t0 = loop.time()
        left = await cancel_and_wait([immortal, plain], grace_s=0.2, round_s=0.05)
        elapsed = loop.time() - t0
        assert plain.cancelled()
        immortal.get_coro().close()  # test cleanup: the task can never finish by itself
        return left, elapsed

    left, elapsed = asyncio.run(main())
    assert left == ["immortal"]
    assert 0.15 <= elapsed < 2.0


@pytest.mark.parametrize(("grace", "round_s"), [(-1.0, 0.1), (1.0, 0.0)])
def test_bad_timings_are_refused(grace: float, round_s: float) -> None:
    async def main() -> None:
        await cancel_and_wait([], grace_s=grace, round_s=round_s)

    with pytest.raises(ValueError, match="grace_s"):
        asyncio.run(main())
