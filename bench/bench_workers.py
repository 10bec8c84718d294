"""N workers: the leader's takeover time, and the per-site work split between two workers.

(a) ``leader_takeover``: two real workers (``flowerhub streams worker`` child processes),
``TAKEOVER_SITES`` sites reporting live once a second. ``KILLS`` times: the leader is
killed with SIGKILL; the figure is the time from the kill to the survivor's first output
(its log line "first output of this lead", a committed FleetState or setpoint), the worst
of the kills; the killed worker is started again (as the demo's supervisor does) before the
next kill, whose leader may then be either worker. Baseline, same run: the group's session
timeout (``settings.workers.session_timeout_s``), the floor of any failover the group
decides. Goal: <= 5 s.

(b) ``telemetry_two_workers``: ``EVENTS`` SiteTelemetry events (1,000 sites, 1 Hz, 12
partitions) as a backlog (produced in one transaction once the workers run and share the
partitions: the workers read committed records only, so they see all of it at once), read
by one worker and then by two (each run its own app id), each until every FleetState of
the span was committed. Figures: the two workers' CPU
seconds each (``/proc``: user + system, from ready to done), their split (the busier over
the other: goal within 1.3x), throughput over the one worker's (events per wall second
from ready to done; both under the same shared machine), and late drops (the workers' log
lines; goal 0: the backlog is read as the live run would). The leader (one of the two)
merges the slices besides its half of the partitions.

Uses ``KAFKA_BOOTSTRAP_SERVERS`` when set, else starts the project's local broker.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

# aiokafka ships no type information
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped, unused-ignore]

from bench import BenchResult
from bench.broker import bench_broker
from contract.codec import encode
from contract.kafka import clients
from contract.kafka.admin import topic_partitions
from contract.kafka.settings import KafkaSettings
from streams.app import prepare_topics, settings_with
from streams.settings import StreamsSettings
from streams.testing.agents import telemetry_record
from streams.testing.live import LiveTelemetry
from streams.testing.workers import leads, outputs, produce_at_once, wait_leader
from streams.worker_process import Worker, stop, streams_worker, wait_for

S = 1_000_000
KILLS = 5
TAKEOVER_SITES = 60
SITES = 1_000
EVENTS = 120_000
FIRST_OUTPUT = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\].*first output of this lead", re.M
)
LATE = re.compile(r"(\d+) late telemetry record\(s\) dropped, ")
FOLDING = re.compile(r"([\d.]+) CPU s folding and filtering")
MERGING = re.compile(r"([\d.]+) CPU s merging")
TICKS = os.sysconf("SC_CLK_TCK")


def _settings(kafka: KafkaSettings, tag: str) -> StreamsSettings:
    app_id = f"bench-{tag}-{uuid.uuid4().hex[:8]}"
    return settings_with(bootstrap=kafka.bootstrap_servers, app_id=app_id, prefix=f"{app_id}.")


def _log_time(stamp: str) -> float:
    """A worker log line's wall time (local time, as the logger wrote it)."""
    seconds = time.mktime(time.strptime(stamp[:19], "%Y-%m-%d %H:%M:%S"))
    return seconds + int(stamp[20:]) / 1000


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _has_output(worker: Worker) -> Callable[[], bool]:
    return lambda: "first output of this lead" in worker.log()


def _takeover(kafka: KafkaSettings, workdir: Path) -> list[BenchResult]:
    workdir.mkdir(parents=True, exist_ok=True)
    settings = _settings(kafka, "takeover")
    asyncio.run(prepare_topics(settings, partitions=12))
    sites = [f"site-{i:04d}" for i in range(TAKEOVER_SITES)]
    times: list[float] = []
    with ExitStack() as stack:
        stack.enter_context(LiveTelemetry(kafka, settings.topic("site.telemetry"), sites))
        running: list[Worker] = []
        contexts: list[ExitStack] = []

        def start() -> None:
            ctx = ExitStack()
            running.append(ctx.enter_context(streams_worker(settings, workdir, partitions=12)))
            contexts.append(ctx)
            stack.callback(ctx.close)

        start()
        start()
        for _ in range(KILLS):
            leader = wait_leader(running, 90)
            wait_for("the leader's output", leader, _has_output(leader))
            survivor = next(w for w in running if w is not leader)
            time.sleep(3.0)  # both settled: partitions shared
            seen = len(FIRST_OUTPUT.findall(survivor.log()))
            killed = time.time()
            leader.proc.send_signal(signal.SIGKILL)
            leader.proc.wait()

            def took(
                survivor: Worker = survivor, seen: int = seen, killed: float = killed
            ) -> float | None:
                found = FIRST_OUTPUT.findall(survivor.log())
                return _log_time(found[-1]) - killed if len(found) > seen else None

            times.append(wait_for("the survivor's first output", survivor, took, timeout_s=60))
            assert leads(survivor)
            index = running.index(leader)
            contexts[index].close()
            del running[index], contexts[index]
            start()  # supervision: the killed worker comes back
    worst = max(times)
    listed = ", ".join(f"{t:.2f}" for t in times)
    return [
        BenchResult(
            name="leader_takeover",
            value=worst,
            unit="s",
            baseline=settings.workers.session_timeout_s,
            goal="<= 5 s",
            higher_is_better=False,
            note=f"kill -9 of the leader -> the survivor's first committed output, worst of "
            f"{KILLS} kills ({listed} s), two workers, {TAKEOVER_SITES} sites live at 1 Hz, "
            f"12 partitions; baseline: the group session timeout (the failure detector)",
        )
    ]


def _backlog(kafka: KafkaSettings) -> tuple[list[tuple[bytes, bytes]], tuple[int, int]]:
    t0 = (time.time_ns() // 1000) // (10 * S) * (10 * S) - (EVENTS // SITES + 60) * S
    values = [
        (
            f"site-{i % SITES:04d}".encode(),
            encode(
                "SiteTelemetry",
                telemetry_record(
                    f"site-{i % SITES:04d}",
                    t0 + (i // SITES) * S + (i % SITES) * 997,
                    oem=("huawei", "sungrow", "saj")[i % 3],
                    battery_power_kw=float(i % 9) - 4.0,
                ),
            ),
        )
        for i in range(EVENTS)
    ]
    seconds = EVENTS // SITES
    # without the idle bound: the 1 s windows but the last two, the 10 s windows but the
    # last one; with it: every window of the span
    return values, (seconds - 2 + (seconds - 1) // 10, seconds + (seconds + 9) // 10)


def _owns(worker: Worker) -> Callable[[], bool]:
    return lambda: "site-tasks: now owns partitions [" in worker.log()


@dataclass(frozen=True)
class _Read:
    """One backlog read: wall seconds to the FleetStates, late drops, the leader's merge
    CPU seconds, per worker process CPU seconds and folding CPU seconds."""

    wall: float
    late: int
    merging: float
    cpu: list[float]
    folding: list[float]
    partial: int  # FleetStates with fewer sites than the fleet (a window closed too soon)


class _Tail:
    """Counts the FleetStates a ``read_committed`` reader sees, as they come (a thread)."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.kafka, self.topic = kafka, topic
        self.arrivals: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> _Tail:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    async def _run(self) -> None:
        consumer = clients.consumer(self.kafka, group_id=None, isolation_level="read_committed")
        async with clients.running(consumer, self.kafka):
            # fleet.state is keyed by the fleet: one partition holds it, whichever that is
            count = (await topic_partitions(self.kafka, [self.topic]))[self.topic]
            consumer.assign([TopicPartition(self.topic, p) for p in range(count)])
            await consumer.seek_to_beginning()
            while not self._stop.is_set():
                for records in (await consumer.getmany(timeout_ms=50)).values():
                    now = time.perf_counter()
                    self.arrivals += [now] * len(records)

    def when(self, count: int, timeout_s: float) -> float:
        deadline = time.perf_counter() + timeout_s
        while len(self.arrivals) < count:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{len(self.arrivals)}/{count} FleetStates in {timeout_s:g} s")
            time.sleep(0.05)
        return self.arrivals[count - 1]


def _read_backlog(
    kafka: KafkaSettings,
    values: list[tuple[bytes, bytes]],
    states: tuple[int, int],
    n: int,
    workdir: Path,
) -> _Read:
    """One backlog read by ``n`` workers: wall seconds until the FleetStates that close
    without the idle bound, late drops, and per worker CPU seconds (process, folding,
    merging)."""
    settings = _settings(kafka, f"split{n}")
    asyncio.run(prepare_topics(settings, partitions=12))
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        running = [
            stack.enter_context(streams_worker(settings, workdir, partitions=12)) for _ in range(n)
        ]
        for w in running:  # the group has split the partitions (the last joined owns some)
            wait_for("partitions", w, _owns(w))
        wait_leader(running)
        time.sleep(2.0)
        tail = stack.enter_context(_Tail(kafka, settings.topic("fleet.state")))
        topic = settings.topic("site.telemetry")
        asyncio.run(produce_at_once(kafka, [(topic, key, value) for key, value in values]))
        cpu0 = [_cpu_s(w.proc.pid) for w in running]
        began = time.perf_counter()
        wall = tail.when(states[0], 600) - began
        tail.when(states[1], 120)  # the last ones close once the partitions are idle
        found = outputs(kafka, settings.topic("fleet.state"))
        partial = sum(1 for s in found if s["sites_online"] != SITES)
        cpu = [_cpu_s(w.proc.pid) - c for w, c in zip(running, cpu0, strict=True)]
        for w in running:
            stop(w)
        folding = [float(FOLDING.findall(w.log())[-1]) for w in running]
        merging = sum(float(m) for w in running for m in MERGING.findall(w.log()))
        late = sum(int(LATE.findall(w.log())[-1]) for w in running)
    return _Read(wall, late, merging, cpu, folding, partial)


def _split(kafka: KafkaSettings, workdir: Path) -> list[BenchResult]:
    values, states = _backlog(kafka)
    one = _read_backlog(kafka, values, states, 1, workdir / "one")
    two = _read_backlog(kafka, values, states, 2, workdir / "two")
    fold = two.folding
    rate1, rate2 = EVENTS / one.wall, EVENTS / two.wall
    return [
        BenchResult(
            name="telemetry_two_workers_split",
            value=max(fold),
            unit="CPU s",
            baseline=min(fold),
            goal="<= 1.3x (decode + aggregate split within 30 %)",
            higher_is_better=False,
            note=f"{EVENTS} events, {SITES} sites, 12 partitions read as a backlog by two "
            f"workers: decode + per-partition windows + slices {fold[0]:.2f} and "
            f"{fold[1]:.2f} CPU s (one worker alone {one.folding[0]:.2f}); whole processes "
            f"{two.cpu[0]:.2f} and {two.cpu[1]:.2f} CPU s (one alone "
            f"{one.cpu[0]:.2f}), the leader's merge {two.merging:.2f} of it",
        ),
        BenchResult(
            name="telemetry_two_workers_rate",
            value=rate2,
            unit="events/s",
            baseline=rate1,
            goal="throughput reported against one worker; late drops 0",
            note=f"commit of the backlog -> the last FleetState that closes without the idle "
            f"bound ({states[0]} of {states[1]}) read committed: two workers "
            f"{two.wall:.2f} s, one {one.wall:.2f} s (a 2-core machine shared with "
            f"the broker and the bench); late drops: two workers {two.late:.0f}, one "
            f"{one.late:.0f}; FleetStates of fewer than {SITES} sites: two workers "
            f"{two.partial}, one {one.partial} (goal 0: every window whole)",
        ),
    ]


def run() -> list[BenchResult]:
    with tempfile.TemporaryDirectory() as tmp, bench_broker(Path(tmp)) as kafka:
        return _takeover(kafka, Path(tmp) / "takeover") + _split(kafka, Path(tmp) / "split")
