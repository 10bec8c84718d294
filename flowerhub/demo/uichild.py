"""The demo's operations view: ``flowerhub ui`` as a child while the scenario plays, and on
the run's archive afterwards (``flowerhub demo --ui-keep``).

The live UI reads the run's topics (``--prefix demo-<run>.``) and browses the run's audit
report once written (``--reports <run>/report``). It binds 127.0.0.1 on the port asked for
(``DEFAULT_PORT``, a URL people can keep open from run to run), or any free port when that
one is taken (another demo, another UI) or when 0 is asked for; the URL is read from the
child's ready line. ``keep_archive_ui`` starts the same view on the archive, on the same port
when it is free again, and returns when the user stops it (Ctrl-C) or it exits.
"""

from __future__ import annotations

import re
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from flowerhub.demo.processes import Child, ChildError, spawn

DEFAULT_PORT = 8765
READY = "flowerhub ui: serving"  # flowerhub.cli.ui.READY (not imported: a CLI module)
READY_TIMEOUT_S = 60.0
_URL = re.compile(re.escape(READY) + r" (\S+)")


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(port: int) -> int:
    """``port`` when it is free, else 0 (the UI takes any free port)."""
    return port if port and port_free(port) else 0


def ui_url(child: Child) -> str:
    """Wait for the child's ready line; its URL."""
    child.wait_for(READY, READY_TIMEOUT_S)
    match = _URL.search(child.log.read_text(encoding="utf-8", errors="replace"))
    if match is None:
        raise ChildError(f"{child.name}: no URL in its ready line ({child.log})")
    return match.group(1)


def start_live_ui(
    connect: list[str], prefix: str, run_dir: Path, port: int, env: dict[str, str]
) -> tuple[Child, str]:
    """``flowerhub ui`` on the run's topics (``connect``: the connection flags, ``env`` their
    environment); the child and its URL."""
    child = spawn(
        "ui",
        [
            *("ui", *connect, "--prefix", prefix),
            *("--port", str(pick_port(port)), "--reports", str(run_dir / "report")),
        ],
        run_dir / "logs",
        cwd=run_dir,
        env=env,
    )
    try:
        return child, ui_url(child)
    except ChildError:
        child.stop(5.0)
        raise


def keep_archive_ui(run_dir: Path, port: int, say: Callable[[str], None]) -> int:
    """``flowerhub ui --archive`` on the finished run until Ctrl-C (or SIGTERM); its exit code."""
    child = spawn(
        "ui-archive",
        [
            *("ui", "--archive", str(run_dir / "archive")),
            *("--reports", str(run_dir / "report"), "--port", str(pick_port(port))),
        ],
        run_dir / "logs",
        cwd=run_dir,
    )
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        say(f"UI on the run's archive: {ui_url(child)}  (Ctrl-C to stop)")
        while child.alive() and not stop.wait(0.5):
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        code = child.stop(10.0)
    return code
