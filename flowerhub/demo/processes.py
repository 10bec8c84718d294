"""Child processes of the demo (`flowerhub ...` verbs) and the memory they use.

Every child runs ``python -m flowerhub.cli <verb> ...`` with its output in a log file; it is
stopped with SIGTERM (its clean shutdown: the archiver flushes, the bridges close their
outboxes) and SIGKILL only after a timeout. ``MemoryMeter`` samples the resident memory of
this process, its children and the broker nodes from /proc and keeps the peak of the sum.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class ChildError(RuntimeError):
    """A child process died early or never became ready (its log tail included)."""


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Child:
    """One running `flowerhub` verb."""

    name: str
    args: list[str]
    log: Path
    proc: subprocess.Popen[bytes]
    terminated: bool = False  #: SIGTERM sent (once: ``terminate`` or ``stop``)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check(self) -> None:
        if not self.alive():
            raise ChildError(
                f"{self.name} exited with {self.proc.returncode}; log {self.log}:\n{tail(self.log)}"
            )

    def wait_for(self, text: str, timeout_s: float) -> None:
        """Block until ``text`` appears in the log (the child's ready line)."""
        deadline = time.monotonic() + timeout_s
        while text not in self.log.read_text(encoding="utf-8", errors="replace"):
            self.check()
            if time.monotonic() > deadline:
                raise ChildError(f"{self.name} not ready in {timeout_s:.0f} s:\n{tail(self.log)}")
            time.sleep(0.1)

    def terminate(self) -> None:
        """SIGTERM without waiting (``stop`` waits); sent once."""
        if self.alive() and not self.terminated:
            self.proc.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM (unless sent), wait, SIGKILL; returns the exit code."""
        if self.alive():
            self.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def spawn(
    name: str,
    verb_args: Sequence[str],
    log_dir: Path,
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
) -> Child:
    """Start ``python -m flowerhub.cli <verb_args>`` with stdout+stderr in ``log_dir/name.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    args = [sys.executable, "-m", "flowerhub.cli", *verb_args]
    with log.open("wb") as out:
        proc = subprocess.Popen(  # our own interpreter and CLI, no shell
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    return Child(name, args, log, proc)


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


@dataclass
class MemoryMeter:
    """Peak of the summed RSS of this process and the pids ``others()`` lists."""

    others: Callable[[], list[int]]
    peak_bytes: int = 0
    samples: int = 0
    per_process_peak: dict[str, int] = field(default_factory=dict)

    def sample(self, names: dict[int, str] | None = None) -> int:
        pids = [os.getpid(), *self.others()]
        total = 0
        for pid in pids:
            rss = rss_bytes(pid)
            total += rss
            label = (names or {}).get(pid, "demo" if pid == os.getpid() else str(pid))
            self.per_process_peak[label] = max(self.per_process_peak.get(label, 0), rss)
        self.peak_bytes = max(self.peak_bytes, total)
        self.samples += 1
        return total
