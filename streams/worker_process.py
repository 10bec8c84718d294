"""A Faust worker as a subprocess: start it, wait until it is ready, stop it.

Faust owns its event loop and signal handling, which do not mix well with a test runner's
process, so the integration tests run a worker as a child process with its output in a log
file: ``tests/integration/test_faust_smoke.py`` (the smoke app; ready file) and
``tests/integration/test_streams_agents.py`` and ``test_streams_telemetry.py``
(:func:`streams_worker`: ``flowerhub streams worker``; ready log line).
Wait for readiness before sending events: Faust 0.15.3 can lose or double events sent while
it is still recovering its tables (see ``tests/integration/faust_smoke_app.py``).

:func:`run_worker` starts a command, waits until ``ready(worker)`` holds, and stops it on exit
with SIGTERM, then SIGKILL after ``STOP_TIMEOUT_S``. Failures carry the log tail:
:class:`WorkerExitedError`, :class:`WorkerTimeoutError`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from streams.settings import StreamsSettings

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
TAIL_CHARS = 4000
PROJECT_ROOT = Path(__file__).resolve().parents[1]

T = TypeVar("T")


class WorkerExitedError(RuntimeError):
    """The worker process exited while it was expected to run."""


class WorkerTimeoutError(RuntimeError):
    """The worker did not become ready, or a condition was not reached, in time."""


@dataclass(frozen=True)
class Worker:
    """A worker subprocess and its log file."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def check_alive(self) -> None:
        """``WorkerExitedError`` with the log tail when the worker has exited."""
        if self.proc.poll() is not None:
            raise WorkerExitedError(self.tail())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self) -> str:
        state = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
        return f"worker {state}; log tail:\n" + self.log()[-TAIL_CHARS:]


@contextmanager
def run_worker(
    command: Sequence[str],
    workdir: Path,
    ready: Callable[[Worker], bool],
    *,
    env: Mapping[str, str] | None = None,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> Iterator[Worker]:
    """Run ``command`` in ``workdir`` (log ``worker-<n>.log`` there) until ``ready`` holds;
    stop it on exit. ``env`` is the child's whole environment (None: inherit)."""
    log_path = workdir / f"worker-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=None if env is None else dict(env),
        )
    worker = Worker(proc, log_path)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while not ready(worker):
            worker.check_alive()
            if time.monotonic() >= deadline:
                raise WorkerTimeoutError(
                    f"worker not ready in {ready_timeout_s:g} s\n{worker.tail()}"
                )
            time.sleep(0.1)
        yield worker
    finally:
        stop(worker)


def stop(worker: Worker) -> None:
    """SIGTERM, then SIGKILL if the worker has not exited within ``STOP_TIMEOUT_S``."""
    proc = worker.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(
    what: str,
    worker: Worker,
    check: Callable[[], T | None],
    timeout_s: float = 30.0,
    every_s: float = 0.3,
) -> T:
    """Call ``check`` until it returns something truthy, while the worker stays alive;
    ``WorkerTimeoutError`` with the last value and the log tail otherwise."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        worker.check_alive()
        last = check()
        if last:
            return last
        time.sleep(every_s)
    raise WorkerTimeoutError(
        f"{what} not reached in {timeout_s} s (last: {last!r})\n{worker.tail()}"
    )


@contextmanager
def streams_worker(
    settings: StreamsSettings,
    workdir: Path,
    *,
    partitions: int,
    loglevel: str = "info",
    env: Mapping[str, str] | None = None,
    metrics: bool = False,
) -> Iterator[Worker]:
    """``flowerhub streams worker`` for ``settings`` (bootstrap, app id, topic prefix) with
    topics of ``partitions`` partitions, run until its ready log line; ``metrics``: serving
    ``/metrics`` on a free loopback port (:func:`metrics_url`)."""
    from streams.app import READY_MESSAGE  # the app module imports Faust: only when used

    command = [
        sys.executable,
        "-m",
        "flowerhub.cli",
        "streams",
        "worker",
        *settings.arguments(),  # the whole connection, TLS/SASL included (no password)
        "--app-id",
        settings.app_id,
        "--prefix",
        settings.topic_prefix,
        "--partitions",
        str(partitions),
        "--loglevel",
        loglevel,
    ]
    with run_worker(
        command,
        workdir,
        lambda worker: READY_MESSAGE in worker.log(),
        env={
            **os.environ,
            **settings.environment(),  # the password, when it is not in a file
            "PYTHONPATH": str(PROJECT_ROOT),
            **({"FLOWERHUB_METRICS_PORT": "0"} if metrics else {}),
            **(env or {}),
        },
    ) as worker:
        yield worker


def metrics_url(worker: Worker) -> str:
    """The ``/metrics`` URL a worker started with ``metrics=True`` logged (it listens
    before the worker is ready)."""
    from streams.metrics import SERVING

    found = re.search(re.escape(SERVING) + r" (http://\S+)", worker.log())
    if found is None:
        raise WorkerTimeoutError(f"no metrics URL in the worker's log\n{worker.tail()}")
    return found.group(1)
