"""The demo watches its children: one that dies during the scenario is reported at once.

:func:`watch_children` polls every child process (streams worker, archiver, bridges, UI)
while the scenario plays; a child that exits is put on the progress line at once, with its
exit status and the last line of its log, and kept in the run's result. The demo's exit
status then names the first child that died (:data:`EXIT_CODES`: 4 streams worker,
5 archiver, 6 an edge bridge, 7 the UI, 8 the gateway) instead of 1 ("an expectation was not met").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from flowerhub.demo.processes import Child, tail

EXIT_CODES = {"streams-worker": 4, "archiver": 5, "bridge": 6, "ui": 7, "gateway": 8}
OTHER_CHILD = 9


@dataclass(frozen=True)
class Death:
    """A child that exited while the scenario played."""

    name: str
    pid: int
    returncode: int
    log: Path
    at_s: float  # seconds since the watch began

    def describe(self) -> str:
        last = tail(self.log, 1).strip() if self.log.exists() else ""
        return (
            f"CHILD DIED: {self.name} (pid {self.pid}) exited with {self.returncode} "
            f"{self.at_s:.0f} s into the scenario; log {self.log}" + (f": {last}" if last else "")
        )


def exit_code_for(name: str) -> int:
    """The demo's exit status when child ``name`` died (bridges are ``bridge-*``)."""
    for prefix, code in EXIT_CODES.items():
        if name == prefix or name.startswith(prefix + "-") or name.startswith(prefix):
            return code
    return OTHER_CHILD


async def watch_children(
    children: Sequence[Child],
    say: Callable[[str], None],
    died: list[Death],
    *,
    every_s: float = 0.5,
) -> None:
    """Until cancelled: append each child that exits to ``died`` and ``say`` it at once."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    seen: set[int] = set()
    while True:
        for child in list(children):
            if child.pid in seen or child.alive():
                continue
            seen.add(child.pid)
            death = Death(
                child.name, child.pid, child.proc.returncode, child.log, loop.time() - began
            )
            died.append(death)
            say(death.describe())
        await asyncio.sleep(every_s)
