"""The demo's streams workers: a worker that dies is started again at once, and given up
after ``max_restarts``; the leader is found from the workers' own log lines."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from flowerhub.demo.processes import Child
from flowerhub.demo.workers import WorkerPool, _Slot, leads
from streams.agents.leader import STEPPED_DOWN_LINES
from streams.agents.leading import LEADING_LINE


def test_the_last_word_on_the_lead_decides() -> None:
    assert not leads("ready\n")
    assert leads(f"ready\n{LEADING_LINE} (previous leader fenced)\n")
    assert not leads(f"{LEADING_LINE}\n{STEPPED_DOWN_LINES[0]}: the group moved it\n")
    assert not leads(f"{LEADING_LINE}\n{STEPPED_DOWN_LINES[1]}: another worker\n")
    assert leads(f"{LEADING_LINE}\n{STEPPED_DOWN_LINES[1]}\n{LEADING_LINE}\n")


class _Pool(WorkerPool):
    """The pool with children that run ``code`` instead of a worker."""

    code = "import time; time.sleep(30)"

    def _spawn(self, index: int, restarts: int) -> Child:
        name = f"streams-worker-{index}" + (f".r{restarts}" if restarts else "")
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", self.code], stdout=out, stderr=subprocess.STDOUT
            )
        return Child(name, [], log, proc)


def test_a_worker_that_dies_is_restarted_then_given_up(tmp_path: Path) -> None:
    said: list[str] = []
    pool = _Pool(2, [], tmp_path, tmp_path, None, said.append, max_restarts=2)

    async def run() -> None:
        pool._slots = [_Slot(i, pool._spawn(i, 0)) for i in (1, 2)]
        supervisor = asyncio.create_task(pool.supervise(every_s=0.05))
        try:
            pool.children[0].proc.kill()  # SIGKILL, as the worker_crash incident
            for _ in range(200):
                await asyncio.sleep(0.05)
                if pool.restarts:
                    break
            assert [r.name for r in pool.restarts] == ["streams-worker-1"]
            assert [c.name for c in pool.children] == ["streams-worker-1.r1", "streams-worker-2"]
            assert pool.children[0].alive()
            pool.code = "raise SystemExit(3)"  # from now on every start fails
            pool.children[0].proc.kill()
            for _ in range(400):
                await asyncio.sleep(0.05)
                if pool.died:
                    break
        finally:
            await pool.stop(5.0)
            supervisor.cancel()
        assert [d.name for d in pool.died] == ["streams-worker-1.r2"]
        assert pool.died[0].returncode == 3
        assert [c.name for c in pool.children] == ["streams-worker-2"]  # the slot given up

    asyncio.run(run())
    assert any(
        "WORKER DIED: streams-worker-1 " in line and "restarted as pid" in line for line in said
    )
    assert "NOT restarted (given up)" in said[-1]
