"""The demo's streams workers: N of them, one app, and a supervisor that restarts one that dies.

Production runs several ``flowerhub streams worker`` processes of one app (README "How to
run N workers"): they share the per-site partitions and elect one leader for the fleet-level
work (``streams.agents.leader``). The demo does the same with :class:`WorkerPool`: ``n``
children named ``streams-worker-1`` ... (a restart adds ``.rK`` to the name, and so to its
log file), each started as the deployment's service manager would (``docker-compose.yml``:
``restart: unless-stopped``): :meth:`WorkerPool.supervise` polls them, and a worker that
exits while the demo plays is named on the progress line with its exit status and last log
line and started again at once; the others keep leading and filtering meanwhile. A slot
that dies more than ``max_restarts`` times is given up: that death is the demo's (exit
status 4, ``flowerhub.demo.watch``).

:meth:`WorkerPool.kill_leader` is the ``worker_crash`` incident: SIGKILL to the worker
whose log says it leads now (``streams.agents.leader``'s log lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flowerhub.demo.processes import Child, ChildError, spawn, tail
from flowerhub.demo.watch import Death

READY_TIMEOUT_S = 120.0
LEADER_TIMEOUT_S = 60.0


def leads(log: str) -> bool:
    """Whether a worker's log says it leads now: its last word on the lead is the line of
    a lead that began."""
    from streams.agents.leader import STEPPED_DOWN_LINES  # Faust: when used
    from streams.agents.leading import LEADING_LINE

    last = log.rfind(LEADING_LINE)
    return last >= 0 and all(log.rfind(word) < last for word in STEPPED_DOWN_LINES)


@dataclass
class Restart:
    """A worker that exited while the demo played and was started again."""

    name: str
    pid: int
    returncode: int
    log: Path
    at_s: float  # seconds since the pool started
    new_pid: int | None = None  # None: not restarted (given up)

    def describe(self) -> str:
        last = tail(self.log, 1).strip() if self.log.exists() else ""
        then = f"restarted as pid {self.new_pid}" if self.new_pid else "NOT restarted (given up)"
        return (
            f"WORKER DIED: {self.name} (pid {self.pid}) exited with {self.returncode} "
            f"{self.at_s:.0f} s in; {then}; log {self.log}" + (f": {last}" if last else "")
        )


@dataclass
class _Slot:
    index: int
    child: Child
    restarts: int = 0


@dataclass
class WorkerPool:
    """``n`` streams workers of one app, supervised (see the module doc). ``args`` are the
    ``streams worker`` arguments after the verb; ``say`` puts a line on the progress."""

    n: int
    args: Sequence[str]
    logs: Path
    cwd: Path
    env: dict[str, str] | None
    say: Callable[[str], None]
    max_restarts: int = 5
    restarts: list[Restart] = field(default_factory=list)
    died: list[Death] = field(default_factory=list)
    _slots: list[_Slot] = field(default_factory=list)
    _t0: float = field(default_factory=time.monotonic)
    _stopping: bool = False

    @property
    def children(self) -> list[Child]:
        """The workers running now (one per slot)."""
        return [s.child for s in self._slots]

    def _spawn(self, index: int, restarts: int) -> Child:
        name = f"streams-worker-{index}" + (f".r{restarts}" if restarts else "")
        return spawn(name, ["streams", "worker", *self.args], self.logs, cwd=self.cwd, env=self.env)

    async def start(self) -> None:
        """Start every worker, wait until each is ready and one of them leads."""
        from streams.app import READY_MESSAGE

        for index in range(1, self.n + 1):
            child = self._spawn(index, 0)
            self._slots.append(_Slot(index, child))
            # one after the other: the first creates the topics, the next find them
            await asyncio.to_thread(child.wait_for, READY_MESSAGE, READY_TIMEOUT_S)
        await self.wait_leader(LEADER_TIMEOUT_S)

    def leader(self) -> Child | None:
        """The worker that leads now (None: none, or not yet said)."""
        found = [c for c in self.children if c.alive() and leads(_read(c.log))]
        return found[0] if len(found) == 1 else None

    async def wait_leader(self, timeout_s: float) -> Child:
        deadline = time.monotonic() + timeout_s
        while (leader := self.leader()) is None:
            if time.monotonic() > deadline:
                tails = "\n".join(f"{c.name}: {tail(c.log, 3)}" for c in self.children)
                raise ChildError(f"no streams worker leads after {timeout_s:.0f} s\n{tails}")
            await asyncio.sleep(0.2)
        return leader

    async def kill_leader(self) -> str:
        """SIGKILL the worker that leads (the ``worker_crash`` incident); a line for the
        progress log. The supervisor starts it again; another worker takes the lead."""
        leader = await self.wait_leader(LEADER_TIMEOUT_S)
        leader.proc.send_signal(signal.SIGKILL)
        return f"streams worker {leader.name} (pid {leader.pid}, the leader) killed with SIGKILL"

    async def supervise(self, every_s: float = 0.5) -> None:
        """Until cancelled: restart each worker that exits (module doc)."""
        while not self._stopping:
            for slot in self._slots:
                child = slot.child
                if child.alive() or self._stopping:
                    continue
                await self._restart(slot, child)
            await asyncio.sleep(every_s)

    async def _restart(self, slot: _Slot, child: Child) -> None:
        at = time.monotonic() - self._t0
        event = Restart(child.name, child.pid, int(child.proc.returncode), child.log, at)
        if slot.restarts >= self.max_restarts:
            self._slots.remove(slot)
            self.restarts.append(event)
            self.died.append(Death(child.name, child.pid, event.returncode, child.log, at))
            self.say(event.describe() + f" ({self.max_restarts} restarts already)")
            return
        slot.restarts += 1
        slot.child = self._spawn(slot.index, slot.restarts)
        event.new_pid = slot.child.pid
        self.restarts.append(event)
        self.say(event.describe())

    async def stop(self, timeout_s: float = 30.0) -> list[tuple[str, int]]:
        """Stop supervising, then every worker (SIGTERM; SIGKILL after ``timeout_s``);
        each name with its exit status. Every worker gets its SIGTERM at once: stopped one
        after another, a survivor would take over the lead for the last moment and re-split
        the reserves over a fleet whose bridges stopped (outputs of the shutdown, not of the
        run, that a re-run of the run's log does not make)."""
        if self._stopping:
            return []
        self._stopping = True
        for child in self.children:
            child.terminate()
        codes = await asyncio.gather(
            *(asyncio.to_thread(child.stop, timeout_s) for child in self.children)
        )
        return [(child.name, code) for child, code in zip(self.children, codes, strict=True)]

    def pids(self) -> list[int]:
        return [c.pid for c in self.children if c.alive()]

    def every_pid(self) -> list[int]:
        """Every worker pid the pool ever started (leftover checks)."""
        return [c.pid for c in self.children] + [r.pid for r in self.restarts]


def _read(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(encoding="utf-8", errors="replace")
    return ""


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a supervisor or watcher task and wait for it."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
