"""A fleet of simulated inverters in a process of its own, for the bridge benchmark.

``python -m bench.simfleet --first I --count N`` starts N simulators (OEMs in turn, as
``bench_bridge`` numbers them), prints one JSON line per simulator (``index``, ``oem``,
``host``, ``port``, ``unit_id``) and then ``READY``. It then serves stdin line commands:

* ``dump``: one JSON line ``{index: [[t, address], ...]}``: the ``time.monotonic()`` instant
  (system-wide on Linux, so comparable across processes) at which each register write was
  applied, and the write's first register (wire address);
* ``quit`` (or end of input): stop the simulators and exit.

Keeping the simulators out of the bridge's process measures the bridge's latency honestly:
they do not share its event loop, its GIL or its CPU time slice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from edge.hal.maps import load_all
from edge.sim.battery import BatteryParams
from edge.sim.server import SimInverter
from edge.testing.harness import free_port

OEMS = ("huawei", "sungrow", "saj")


def oem_of(index: int) -> str:
    return OEMS[index % len(OEMS)]


def write_times(sim: SimInverter) -> list[tuple[float, int]]:
    """The write log on the ``time.monotonic()`` clock: (instant, first register written)."""
    base = sim._t0 - sim._offset_s  # sim clock -> time.monotonic()
    return [(base + w.time_s, w.address) for w in sim.write_log]


async def _start(rmap: Any, index: int, params: BatteryParams, tick_s: float) -> SimInverter:
    """Start one simulator on a free port; a port taken between probe and bind is retried."""
    for attempt in range(5):
        sim = SimInverter(rmap, port=free_port(), seed=index, battery=params, tick_s=tick_s)
        try:
            await sim.start()
        except (RuntimeError, OSError):  # nothing listens and no ticker runs yet
            if attempt == 4:
                raise
            continue
        return sim
    raise AssertionError("unreachable")


async def serve(first: int, count: int, tick_s: float, params: BatteryParams) -> None:
    maps = load_all()
    sims: dict[int, SimInverter] = {}
    for index in range(first, first + count):
        sims[index] = sim = await _start(maps[oem_of(index)], index, params, tick_s)
        where = {"host": sim.host, "port": sim.port, "unit_id": sim.unit_id}
        print(json.dumps({"index": index, "oem": sim.rmap.oem, **where}))
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if line == "dump":
                print(json.dumps({i: write_times(s) for i, s in sims.items()}), flush=True)
            elif line in ("quit", ""):
                return
    finally:
        for sim in sims.values():
            await sim.stop()


@dataclass(frozen=True)
class FleetSite:
    index: int
    oem: str
    host: str
    port: int
    unit_id: int


class SimFleet:
    """Parent side: ``processes`` simulator processes holding ``count`` simulators between them."""

    def __init__(self, count: int, processes: int, *, ready_timeout_s: float = 120.0) -> None:
        self.sites: list[FleetSite] = []
        self._procs: list[subprocess.Popen[str]] = []
        per = -(-count // max(1, processes))
        try:
            for first in range(0, count, per):
                n = min(per, count - first)
                args = [sys.executable, "-m", "bench.simfleet", "--first", str(first)]
                self._procs.append(
                    subprocess.Popen(
                        [*args, "--count", str(n)],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                )
            for proc in self._procs:
                for line in _lines(proc):
                    if line == "READY":
                        break
                    self.sites.append(FleetSite(**json.loads(line)))
        except BaseException:
            self.close()
            raise
        self.sites.sort(key=lambda s: s.index)
        if len(self.sites) != count:
            self.close()
            raise RuntimeError(f"simulator fleet: {len(self.sites)} of {count} started")

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def dump(self) -> dict[int, list[tuple[float, int]]]:
        """Every simulator's writes (``time.monotonic()`` instant, address), by site index."""
        out: dict[int, list[tuple[float, int]]] = {}
        for proc in self._procs:
            _stdin(proc).write("dump\n")
            _stdin(proc).flush()
        for proc in self._procs:
            data: dict[str, Any] = json.loads(next(iter(_lines(proc))))
            out.update({int(k): [(float(t), int(a)) for t, a in v] for k, v in data.items()})
        return out

    def close(self) -> None:
        for proc in self._procs:
            try:
                _stdin(proc).write("quit\n")
                _stdin(proc).close()
            except (OSError, ValueError):
                pass
        for proc in self._procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def __enter__(self) -> SimFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stdin(proc: subprocess.Popen[str]) -> IO[str]:
    if proc.stdin is None:
        raise RuntimeError("simulator process has no stdin pipe")
    return proc.stdin


def _lines(proc: subprocess.Popen[str]) -> Iterator[str]:
    if proc.stdout is None:
        raise RuntimeError("simulator process has no stdout pipe")
    for line in proc.stdout:
        yield line.strip()
    raise RuntimeError(f"simulator process {proc.pid} exited ({proc.poll()})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simfleet")
    parser.add_argument("--first", type=int, default=0, help="index of the first simulator")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--tick-s", type=float, default=1.0, help="battery model step")
    parser.add_argument("--tau-s", type=float, default=0.5)
    parser.add_argument("--dead-time-s", type=float, default=0.1)
    args = parser.parse_args(argv)
    if args.count < 1 or args.first < 0 or args.tick_s <= 0:
        parser.error("--count >= 1, --first >= 0 and --tick-s > 0 are required")
    params = BatteryParams(tau_s=args.tau_s, dead_time_s=args.dead_time_s)
    asyncio.run(serve(args.first, args.count, args.tick_s, params))
    return 0


if __name__ == "__main__":
    sys.exit(main())
