"""The suite's leak check (tests/leakcheck.py) sees each kind of leak, and no leak where none is.

Each test leaks one thing on purpose, asks ``find_leaks`` about it, then cleans up before
the autouse check of the test itself runs.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests import leakcheck


def quick(before: leakcheck.Picture) -> leakcheck.Leaks:
    return leakcheck.find_leaks(before, None, grace_s=0.2)


def test_nothing_left_behind_is_no_leak() -> None:
    before = leakcheck.Picture.take()
    done = threading.Thread(target=lambda: None)
    done.start()
    done.join()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
    assert not quick(before)


def test_a_running_thread_is_a_leak_until_it_ends() -> None:
    stop = threading.Event()
    before = leakcheck.Picture.take()
    worker = threading.Thread(target=stop.wait, name="left-running")
    worker.start()
    try:
        leaks = quick(before)
        assert [t.name for t in leaks.threads] == ["left-running"]
        assert "thread 'left-running'" in leaks.report("t")
    finally:
        stop.set()
        worker.join()
    assert not quick(before)


def test_an_open_socket_is_a_leak_and_names_its_address() -> None:
    before = leakcheck.Picture.take()
    listener = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        leaks = quick(before)
        assert len(leaks.sockets) == 1
        assert f"port={port}" in leaks.report("t")
        assert "LISTEN" in leaks.report("t")
    finally:
        listener.close()
    assert not quick(before)


def test_an_open_file_is_a_leak(tmp_path: Path) -> None:
    before = leakcheck.Picture.take()
    fh = (tmp_path / "kept-open.txt").open("w")
    try:
        leaks = quick(before)
        assert [path for _, path in leaks.files] == [str(tmp_path / "kept-open.txt")]
    finally:
        fh.close()
    assert not quick(before)


def test_a_child_process_is_a_leak_and_is_stopped() -> None:
    before = leakcheck.Picture.take()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        leaks = quick(before)
        assert [p.pid for p in leaks.processes] == [child.pid]
        assert "time.sleep(60)" in leaks.report("t")
        leakcheck.stop_processes(leaks.processes)
        assert child.wait(timeout=10) is not None
    finally:
        child.kill()
        child.wait()
    assert not quick(before)


def test_a_task_asyncio_run_had_to_cancel_is_a_leak() -> None:
    async def forgotten() -> None:
        await asyncio.sleep(60)

    async def main() -> None:
        asyncio.get_running_loop().create_task(forgotten(), name="forgotten")
        await asyncio.sleep(0)

    leakcheck.TASKS.reset()
    asyncio.run(main())
    try:
        (leak,) = leakcheck.TASKS.leaked()
        assert leak.startswith("task forgotten running ")
        assert leak.endswith("<locals>.forgotten")
    finally:
        leakcheck.TASKS.reset()


def test_a_task_cancelled_but_not_awaited_is_no_leak() -> None:
    async def main() -> None:
        task = asyncio.get_running_loop().create_task(asyncio.sleep(60))
        await asyncio.sleep(0)
        task.cancel()  # asked to stop: the code did its part

    leakcheck.TASKS.reset()
    asyncio.run(main())
    assert leakcheck.TASKS.leaked() == []


def test_a_task_on_a_loop_closed_under_it_is_a_leak() -> None:
    leakcheck.TASKS.reset()
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(asyncio.sleep(60), name="stranded")
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    try:
        assert [t.split(" running")[0] for t in leakcheck.TASKS.leaked()] == ["task stranded"]
    finally:
        leakcheck.TASKS.reset()
        del task  # pending forever on a closed loop; dropped with the loop


def test_a_shared_service_is_checked_when_it_stops() -> None:
    stop = threading.Event()

    def serve() -> None:
        with leakcheck.shared_service("svc", grace_s=0.2):
            assert leakcheck.shared_services() == ["svc"]
            threading.Thread(target=stop.wait, name="kept").start()

    try:
        with pytest.raises(AssertionError, match=r"shared service 'svc' leaked:\n  thread 'kept'"):
            serve()
    finally:
        stop.set()
    assert leakcheck.shared_services() == []


def test_fonts_of_matplotlibs_font_cache_are_allowed() -> None:
    import matplotlib

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    before = leakcheck.Picture.take()
    with font.open("rb"):  # as FT2Font keeps it open in matplotlib's lru_cache
        assert not quick(before)
