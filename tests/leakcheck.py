"""Leak checks for the test suite: asyncio tasks, threads, child processes, sockets, files.

Modelled on pymodbus's ``system_health_check`` fixture (test/conftest.py): take a picture
of what the process holds before a test, and after it fail the test for whatever it left
behind, after a short grace period in which well-behaved shutdowns finish. Unlike pymodbus's
suite ours runs its event loops with ``asyncio.run`` (no pytest-asyncio), so tasks are seen
in two places:

- ``asyncio.run`` (``asyncio.Runner.close``) cancels every task still pending when the main
  coroutine returns. A task that only ends that way was never stopped by the code that
  started it: a leak. Tasks already asked to cancel (``Task.cancelling()``) are not.
- A loop closed (or dropped) with tasks still pending leaves them pending forever: every
  loop made during the test is looked at afterwards.

Threads, child processes (``psutil``), sockets and open files (``/proc/self/fd``) are compared
by identity with the picture taken before the test. What session-scoped fixtures hold (the
session broker's JVM, its sockets, ...) was there before and is not a leak. Leaked child
processes are stopped after they are reported, so that one failing test does not leave
processes running on a shared machine.

Two allowances. Font files matplotlib keeps open for the life of the process (its font cache,
``matplotlib.font_manager._get_font``, holds each loaded FT2Font and so its file) are not
files a test opened. And a module- or session-scoped fixture that shares a running service among
its tests (a bridge fleet, a 3-broker cluster) wraps the service's life in
:func:`shared_service`. While it serves, it opens connections, threads and files of its own
and a test may restart its parts (a simulator, a broker), so the tests that run meanwhile
are checked for asyncio tasks only; the service itself is checked for everything when it
stops, against the picture taken when it started.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psutil

GRACE_S = 5.0  # a leak must persist this long after the test: shutdowns in flight may finish
POLL_S = 0.05


def _font_dirs() -> tuple[str, ...]:
    """Where matplotlib's process-lifetime font cache opens files (the first allowance)."""
    spec = importlib.util.find_spec("matplotlib")
    dirs = ["/usr/share/fonts/"]
    if spec is not None and spec.submodule_search_locations:
        dirs.append(os.path.join(spec.submodule_search_locations[0], "mpl-data", "fonts", ""))
    return tuple(dirs)


FONT_DIRS = _font_dirs()


def open_fds() -> tuple[dict[str, int], dict[tuple[int, str], int]]:
    """Open sockets (``socket:[inode]`` -> fd) and files ((device, inode) -> fd) of this process.

    Files are those on a file system (not ``/dev``, ``/proc``, pipes or anonymous inodes, nor
    the fonts of matplotlib's font cache), keyed by identity, so that reusing a descriptor
    number is not mistaken for a leak.
    """
    sockets: dict[str, int] = {}
    files: dict[tuple[int, str], int] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
            if target.startswith("socket:"):
                sockets[target] = int(name)
            elif target.startswith("/") and not target.startswith(("/dev/", "/proc/", *FONT_DIRS)):
                st = os.stat(f"/proc/self/fd/{name}")
                files[(st.st_ino, target)] = int(name)
        except OSError:  # closed meanwhile (or the listdir fd itself)
            continue
    return sockets, files


def children() -> dict[int, psutil.Process]:
    """Live (not zombie) descendants of this process, by pid."""
    alive: dict[int, psutil.Process] = {}
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                alive[child.pid] = child
        except psutil.NoSuchProcess:
            continue
    return alive


def _process_key(proc: psutil.Process) -> tuple[int, float]:
    try:
        return proc.pid, proc.create_time()
    except psutil.NoSuchProcess:
        return proc.pid, -1.0


class TaskWatch:
    """Sees the tasks ``asyncio.run`` had to cancel and the loops made during a test.

    ``install()`` wraps ``asyncio.Runner.close`` and the event loop policy's
    ``new_event_loop`` once per session; ``take()`` returns (and forgets) what was seen.
    """

    def __init__(self) -> None:
        self.cancelled_by_runner: list[str] = []
        self.loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        self._installed = False

    def install(self) -> None:
        if self._installed:
            return
        self._installed = True
        watch = self
        original_close = asyncio.Runner.close

        def close(runner: asyncio.Runner) -> None:
            loop = getattr(runner, "_loop", None)  # None: the runner never started a loop
            if loop is not None and not loop.is_closed():
                for task in asyncio.all_tasks(loop):
                    if not task.done() and not task.cancelling():
                        watch.cancelled_by_runner.append(describe_task(task))
            original_close(runner)

        asyncio.Runner.close = close  # type: ignore[method-assign, assignment]  # the one patch

        policy = asyncio.get_event_loop_policy()
        original_new = policy.new_event_loop

        def new_event_loop() -> asyncio.AbstractEventLoop:
            loop = original_new()
            watch.loops.add(loop)
            return loop

        policy.new_event_loop = new_event_loop  # type: ignore[method-assign]

    def reset(self) -> None:
        self.cancelled_by_runner.clear()
        self.loops = weakref.WeakSet()

    def leaked(self) -> list[str]:
        """Every task seen leaking since the last ``reset``."""
        return [*self.cancelled_by_runner, *self.pending()]

    def pending(self) -> list[str]:
        """Tasks still pending on a loop made during the test that is no longer running."""
        found = []
        for loop in list(self.loops):
            if loop.is_running():  # its thread is still alive: reported as a thread leak
                continue
            found += [describe_task(t) for t in asyncio.all_tasks(loop) if not t.done()]
        return found


TASKS = TaskWatch()  # the one watch: installed by tests/conftest.py at the session's start


def describe_task(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    where = getattr(coro, "__qualname__", None) or repr(coro)
    return f"task {task.get_name()} running {where}"


@dataclass
class Picture:
    """What the process holds at one moment."""

    threads: set[threading.Thread] = field(default_factory=set)
    processes: dict[tuple[int, float], psutil.Process] = field(default_factory=dict)
    sockets: dict[str, int] = field(default_factory=dict)
    files: dict[tuple[int, str], int] = field(default_factory=dict)

    @classmethod
    def take(cls) -> Picture:
        procs = {_process_key(p): p for p in children().values()}
        sockets, files = open_fds()
        return cls(set(threading.enumerate()), procs, sockets, files)


@dataclass
class Leaks:
    tasks: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    processes: list[psutil.Process] = field(default_factory=list)
    sockets: dict[str, int] = field(default_factory=dict)
    files: dict[tuple[int, str], int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.tasks or self.threads or self.processes or self.sockets or self.files)

    def report(self, what: str) -> str:
        lines = [f"{what} leaked:"]
        lines += [f"  asyncio {t}" for t in self.tasks]
        lines += [f"  thread {t.name!r} ({t!r})" for t in self.threads]
        for proc in self.processes:
            try:
                lines.append(f"  child process {proc.pid}: {' '.join(proc.cmdline())[:200]}")
            except psutil.Error:
                lines.append(f"  child process {proc.pid} (gone while reporting)")
        lines += [f"  {s} (fd {fd}){_describe_socket(fd)}" for s, fd in self.sockets.items()]
        lines += [f"  open file {path} (fd {fd})" for (_, path), fd in self.files.items()]
        return "\n".join(lines)


def _describe_socket(fd: int) -> str:
    try:
        for conn in psutil.Process().net_connections(kind="all"):
            if conn.fd == fd:
                peer = conn.raddr if conn.raddr else "-"  # empty tuple: not connected
                return f": {conn.type.name} {conn.laddr} -> {peer} {conn.status}"
    except psutil.Error:
        pass
    return ""


def _new_since(before: Picture, now: Picture) -> Leaks:
    return Leaks(
        threads=[t for t in now.threads - before.threads if t.is_alive()],
        processes=[p for k, p in now.processes.items() if k not in before.processes],
        sockets={s: fd for s, fd in now.sockets.items() if s not in before.sockets},
        files={f: fd for f, fd in now.files.items() if f not in before.files},
    )


def find_leaks(
    before: Picture,
    tasks: TaskWatch | None,
    *,
    grace_s: float = GRACE_S,
    sleep: Callable[[float], None] = time.sleep,
) -> Leaks:
    """What appeared since ``before`` and is still there after up to ``grace_s`` seconds."""
    found = _new_since(before, Picture.take())
    if found:  # unreferenced sockets and loops close when collected: not leaks
        gc.collect()
        deadline = time.monotonic() + grace_s
        while True:
            found = _new_since(before, Picture.take())
            if not found or time.monotonic() >= deadline:
                break
            sleep(POLL_S)
    if tasks is not None:
        found.tasks = tasks.leaked()
    return found


def stop_processes(processes: Iterable[psutil.Process], timeout_s: float = 5.0) -> None:
    """Terminate, then kill, leaked child processes (after they were reported)."""
    procs = list(processes)
    for proc in procs:
        try:
            proc.terminate()
        except psutil.Error:
            continue
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(alive, timeout=timeout_s)


_SHARED: list[str] = []  # services of module/session fixtures running now (shared_service)


def shared_services() -> list[str]:
    """Names of the shared services running now (their tests are checked for tasks only)."""
    return list(_SHARED)


@contextmanager
def shared_service(name: str, grace_s: float = GRACE_S) -> Iterator[None]:
    """The life of a service a module- or session-scoped fixture shares among its tests.

    Wrap the code that starts and stops it. What it holds when it has stopped, compared with
    the picture taken before it started, fails the fixture's teardown (leaked child
    processes stopped first).
    """
    before = Picture.take()
    _SHARED.append(name)
    try:
        yield
    finally:
        _SHARED.remove(name)
    leaks = find_leaks(before, None, grace_s=grace_s)
    stop_processes(leaks.processes)
    if leaks:
        raise AssertionError(leaks.report(f"shared service {name!r}"))
