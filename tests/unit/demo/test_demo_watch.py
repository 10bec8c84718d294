"""The demo watches its children: a death is said at once and names the exit status."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from flowerhub.demo.processes import Child
from flowerhub.demo.watch import EXIT_CODES, OTHER_CHILD, Death, exit_code_for, watch_children


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("streams-worker", 4),
        ("archiver", 5),
        ("bridge-huawei-0", 6),
        ("ui", 7),
        ("something", OTHER_CHILD),
    ],
)
def test_exit_status_names_the_child(name: str, code: int) -> None:
    assert exit_code_for(name) == code
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)


def _child(tmp_path: Path, name: str, code: str) -> Child:
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT)
    return Child(name, [], log, proc)


def test_a_child_that_dies_is_reported_at_once(tmp_path: Path) -> None:
    dying = _child(tmp_path, "archiver", "print('disk full'); raise SystemExit(2)")
    living = _child(tmp_path, "streams-worker", "import time; time.sleep(30)")
    said: list[str] = []
    died: list[Death] = []

    async def run() -> None:
        watcher = asyncio.create_task(
            watch_children([dying, living], said.append, died, every_s=0.05)
        )
        for _ in range(200):  # 10 s at most
            await asyncio.sleep(0.05)
            if died:
                break
        await asyncio.sleep(0.2)  # no second report of the same death
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher

    try:
        asyncio.run(run())
    finally:
        living.proc.kill()
        living.proc.wait()
        dying.proc.wait()
    assert [(d.name, d.returncode) for d in died] == [("archiver", 2)]
    assert len(said) == 1
    assert said[0].startswith(f"CHILD DIED: archiver (pid {dying.pid}) exited with 2")
    assert said[0].endswith("disk full")
