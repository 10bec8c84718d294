"""The operations view (``flowerhub ui``): latency to the screen, server CPU, 10,000 rows.

The real ``flowerhub ui`` process on the bench broker, Debian's chromium driven by Playwright
(``make ui-browser``), events produced by this process. Figures:

- ``ui event -> screen p50/p99``: a FleetState produced to Kafka until its frequency is on the
  Fleet view's tile (a ``MutationObserver`` in the page stamps each new text with
  ``Date.now()``; the producer stamps ``time.time()`` before the send: one clock). Events
  every 150-250 ms (random), ``LATENCY_EVENTS`` of them. Baseline, same run and same
  events: a groupless aiokafka consumer in this process (produce -> consume): what Kafka
  alone takes. Goal: p99 <= 1 s.
- ``ui server CPU, 1,300 sites at 1 Hz``: the UI process's CPU time (/proc utime+stime) over
  ``CPU_S`` seconds of 1,300 SiteTelemetry/s (12 partitions, as the topic table), with a
  browser on the Sites view taking the live rows. Baseline, same stream at the same time: a
  raw aiokafka consumer process that only counts the records (the floor of reading the topic
  in Python). Goal: < 10 % of one core.
- ``sites view, 10,000 rows: first render`` (navigation start -> the table drawn with its
  rows, from the page's performance marks) and ``... filter`` (an OEM picked -> the table
  re-drawn; median of ``FILTER_ROUNDS``). Baseline, same browser, same rows: a plain DOM
  ``<table>`` of all 10,000 rows built with ``innerHTML`` (and hidden rows for the filter),
  what a page without a virtualised grid pays.

Uses ``KAFKA_BOOTSTRAP_SERVERS`` when set, else starts the project's local broker.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench import BenchResult
from bench.broker import bench_broker
from contract.codec import decode_raw, encode
from contract.kafka import clients
from contract.kafka.admin import create_topics
from contract.kafka.settings import KafkaSettings
from contract.testing.strategies import site_telemetry_example
from streams.worker_process import PROJECT_ROOT, Worker, run_worker

T = TypeVar("T")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LATENCY_EVENTS = 150
CPU_SITES = 1_300
CPU_S = 30.0
CPU_WARMUP_S = 8.0
ROWS = 10_000
FILTER_ROUNDS = 5
OEMS = (("huawei", "SUN2000-10KTL-M1"), ("sungrow", "SH10RT"), ("saj", "H2-10K-S2"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
US = 1_000_000


@dataclass(frozen=True)
class Ctx:
    """What every figure uses: the Kafka loop thread, the browser, the broker, one UI."""

    loop: LoopThread
    browser: Any  # playwright.sync_api.Browser
    kafka: KafkaSettings
    prefix: str
    url: str
    ui: Worker


class LoopThread:
    """An asyncio loop on its own thread (Playwright's sync API owns the main thread's)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 600.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def now_us() -> int:
    return time.time_ns() // 1000


@contextmanager
def ui_server(kafka: KafkaSettings, prefix: str, workdir: Path) -> Iterator[tuple[Worker, str]]:
    command = [sys.executable, "-m", "flowerhub.cli", "ui", *kafka.arguments()]
    command += ["--prefix", prefix, "--port", "0"]

    def url(worker: Worker) -> str | None:
        for line in worker.log().splitlines():
            if line.startswith("flowerhub ui: serving "):
                return line.split()[3]
        return None

    env = {**os.environ, **kafka.environment(), "PYTHONPATH": str(PROJECT_ROOT)}
    with run_worker(command, workdir, lambda w: url(w) is not None, env=env) as worker:
        found = url(worker)
        assert found is not None
        yield worker, found


def status(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}api/status", timeout=10) as response:  # noqa: S310  # loopback
        data: dict[str, Any] = json.loads(response.read())
    return data


def wait_loaded(url: str, events: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        s = status(url)
        if not s["loading"] and sum(s["stats"]["events"].values()) >= events:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the UI did not load {events} events in {timeout_s} s: {status(url)}")


def telemetry_value(i: int, t_us: int) -> tuple[bytes, bytes]:
    oem, model = OEMS[i % len(OEMS)]
    site = f"site-{i:05d}"
    record = site_telemetry_example(
        event_id=str(uuid.uuid4()),
        site_id=site,
        event_time=t_us,
        oem=oem,
        model=model,
        battery_power_kw=round(random.uniform(-5, 5), 3),
        soc_pct=round(random.uniform(10, 90), 1),
        frequency_hz=50.0,
    )
    return site.encode(), encode("SiteTelemetry", record)


def fleet_state_value(t_us: int, frequency: float) -> bytes:
    record = {
        "event_id": str(uuid.uuid4()),
        "event_time": t_us,
        "fleet_id": "bench",
        "window_start": t_us - US,
        "window_end": t_us,
        "window_s": 1,
        "total_power_mw": 1.0,
        "headroom_up_mw": 1.0,
        "headroom_down_mw": 1.0,
        "sites_online": 10,
        "sites_faulted": 0,
        "mean_frequency_hz": frequency,
        "per_oem": [],
    }
    return encode("FleetState", record)


async def produce_all(kafka: KafkaSettings, topic: str, items: list[tuple[bytes, bytes]]) -> None:
    producer = clients.producer(kafka, linger_ms=5)
    await clients.start(producer, kafka)
    try:
        futures = [await producer.send(topic, value=v, key=k) for k, v in items]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ------------------------------------------------------------------ latency
OBSERVER = """() => {
  window.__seen = [];
  const el = document.querySelector('#tile-frequency .value');
  let last = el.textContent;
  new MutationObserver(() => {
    const text = el.textContent;
    if (text !== last) { last = text; window.__seen.push([text, Date.now()]); }
  }).observe(el, {childList: true, characterData: true, subtree: true});
}"""


async def _latency_run(
    kafka: KafkaSettings, topic: str
) -> tuple[dict[str, float], dict[str, float]]:
    """Send the FleetStates; (text -> send time, text -> Kafka receive time), seconds."""
    consumer = clients.consumer(kafka, topic, group_id=None)
    await clients.start(consumer, kafka)
    await consumer.seek_to_end()
    producer = clients.producer(kafka)
    await clients.start(producer, kafka)
    sent: dict[str, float] = {}
    received: dict[str, float] = {}

    async def consume() -> None:
        while len(received) < LATENCY_EVENTS:
            batches = await consumer.getmany(timeout_ms=200)
            stamp = time.time()
            for records in batches.values():
                for r in records:
                    freq = decode_raw(r.value).record["mean_frequency_hz"]
                    received.setdefault(f"{freq:.3f} Hz", stamp)

    reader = asyncio.create_task(consume())
    try:
        for i in range(LATENCY_EVENTS):
            freq = round(49.0 + 0.001 * (i + 1), 3)
            value = fleet_state_value(now_us(), freq)
            sent[f"{freq:.3f} Hz"] = time.time()
            await producer.send_and_wait(topic, value=value, key=b"bench")
            await asyncio.sleep(random.uniform(0.15, 0.25))
        await asyncio.wait_for(reader, 10.0)
    finally:
        reader.cancel()
        await producer.stop()
        await consumer.stop()
    return sent, received


def latency(c: Ctx) -> list[BenchResult]:
    page = c.browser.new_page(bypass_csp=True)
    try:
        page.goto(f"{c.url}#/fleet")
        page.wait_for_selector("#tile-frequency .value")
        page.evaluate(OBSERVER)
        sent, received = c.loop.call(_latency_run(c.kafka, f"{c.prefix}fleet.state"))
        time.sleep(1.0)
        seen = {text: t / 1000.0 for text, t in page.evaluate("window.__seen")}
    finally:
        page.close()
    ui = [seen[k] - sent[k] for k in sent if k in seen]
    kafka = [received[k] - sent[k] for k in sent if k in received]
    if len(ui) < 0.9 * LATENCY_EVENTS:
        raise RuntimeError(f"only {len(ui)} of {LATENCY_EVENTS} events reached the screen")
    note = f"{len(ui)}/{LATENCY_EVENTS} events on screen, every 150-250 ms"
    return [
        BenchResult(
            name=f"ui event on Kafka -> screen p{int(q * 100)}",
            value=percentile(ui, q) * 1000,
            unit="ms",
            baseline=percentile(kafka, q) * 1000,
            goal="p99 <= 1000 ms",
            higher_is_better=False,
            note=note + "; baseline: produce -> raw consumer",
        )
        for q in (0.5, 0.99)
    ]


# ---------------------------------------------------------------------- CPU
# the baseline: a bare aiokafka consumer in its own process (the bench broker is plaintext)
RAW_CONSUMER = """
import asyncio, sys, time
from aiokafka import AIOKafkaConsumer
async def main(bootstrap, topic, seconds):
    c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None)
    await c.start()
    await c.seek_to_end()
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        for records in (await c.getmany(timeout_ms=200, max_records=20000)).values():
            n += len(records)
    await c.stop()
    print(n, flush=True)
asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


async def _stream_telemetry(kafka: KafkaSettings, topic: str, seconds: float) -> int:
    """CPU_SITES SiteTelemetry per second for ``seconds``, in ten slices a second."""
    producer = clients.producer(kafka, acks=1, enable_idempotence=False, linger_ms=20)
    await clients.start(producer, kafka)
    sent = 0
    try:
        start = time.monotonic()
        tick = 0
        while (elapsed := time.monotonic() - start) < seconds:
            slice_ = range(tick % 10, CPU_SITES, 10)
            t = now_us()
            futures = [
                await producer.send(topic, value=v, key=k)
                for k, v in (telemetry_value(i, t) for i in slice_)
            ]
            await asyncio.gather(*futures)
            sent += len(futures)
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * 0.1 - time.monotonic()))
            del elapsed
    finally:
        await producer.stop()
    return sent


def cpu(c: Ctx) -> BenchResult:
    import subprocess

    loop, ui = c.loop, c.ui
    bootstrap = c.kafka.bootstrap_servers  # the raw baseline reader: plain aiokafka
    topic = f"{c.prefix}site.telemetry"
    page = c.browser.new_page(bypass_csp=True)
    total_s = CPU_WARMUP_S + CPU_S
    raw = subprocess.Popen(  # the baseline reader, its own process (its own CPU account)
        [sys.executable, "-c", RAW_CONSUMER, bootstrap, topic, str(total_s + 2)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        page.goto(f"{c.url}#/sites")
        future = asyncio.run_coroutine_threadsafe(
            _stream_telemetry(c.kafka, topic, total_s), loop.loop
        )
        time.sleep(CPU_WARMUP_S)
        ui_0, raw_0, t_0 = cpu_seconds(ui.proc.pid), cpu_seconds(raw.pid), time.monotonic()
        time.sleep(CPU_S)
        ui_1, raw_1, t_1 = cpu_seconds(ui.proc.pid), cpu_seconds(raw.pid), time.monotonic()
        sent = future.result(60)
        rows = page.evaluate("document.querySelector('#sites-count').textContent")
        counted, _ = raw.communicate(timeout=60)
    finally:
        page.close()
        if raw.poll() is None:
            raw.kill()
            raw.wait()
    wall = t_1 - t_0
    rate = sent / total_s
    return BenchResult(
        name="ui server CPU, 1,300 sites at 1 Hz",
        value=100 * (ui_1 - ui_0) / wall,
        unit="% of one core",
        baseline=100 * (raw_1 - raw_0) / wall,
        goal="< 10 % of one core",
        higher_is_better=False,
        note=(
            f"{rate:,.0f} events/s for {total_s:.0f} s, measured over the last {wall:.0f} s, a "
            f"browser on the Sites view ({rows}); baseline: a raw consumer process "
            f"({counted.strip()} records)"
        ),
    )


# ----------------------------------------------------------------- 10k rows
PLAIN_RENDER = """async (rows) => {
  document.body.innerHTML = '<table id="t"><tbody></tbody></table>';
  const t0 = performance.now();
  document.querySelector('#t tbody').innerHTML = rows.map((r) =>
    `<tr data-oem="${r.oem}"><td>${r.id}</td><td>${r.oem}</td><td>${r.model}</td><td>${r.link}</td>`
    + `<td>${r.mode}</td><td>${r.soc_pct}</td><td>${r.power_kw}</td><td>${r.baseline_kw}</td>`
    + `<td>${r.delivered_kw}</td><td>${r.setpoint_kw}</td><td>${r.armed}</td><td>${r.result}</td>`
    + `<td>${r.faults}</td><td>${r.last_seen}</td></tr>`).join('');
  document.body.offsetHeight;
  await new Promise((r) => requestAnimationFrame(() => r()));
  return performance.now() - t0;
}"""
PLAIN_FILTER = """async (oem) => {
  const t0 = performance.now();
  for (const tr of document.querySelectorAll('#t tbody tr')) {
    tr.style.display = tr.dataset.oem === oem ? '' : 'none';
  }
  document.body.offsetHeight;
  await new Promise((r) => requestAnimationFrame(() => r()));
  return performance.now() - t0;
}"""


def rows(c: Ctx) -> list[BenchResult]:
    browser, url = c.browser, c.url
    page = browser.new_page(viewport={"width": 1500, "height": 1000}, bypass_csp=True)
    try:
        page.goto(f"{url}#/sites")
        page.wait_for_selector('main[data-rendered="1"]', timeout=60_000)
        render_ms = page.evaluate("performance.getEntriesByName('sites-rendered')[0].startTime")
        count = page.evaluate("document.querySelector('#sites-count').textContent")
        filters = []
        for i in range(FILTER_ROUNDS):
            oem = OEMS[i % len(OEMS)][0]
            page.select_option("#sites-oem", oem)
            page.wait_for_function(
                f"performance.getEntriesByName('sites-filter').length >= {i + 1}"
            )
            filters.append(
                page.evaluate(f"performance.getEntriesByName('sites-filter')[{i}].duration")
            )
        data = json.loads(urllib.request.urlopen(f"{url}api/sites", timeout=30).read())["rows"]  # noqa: S310  # loopback
        plain = browser.new_page(viewport={"width": 1500, "height": 1000})
        try:
            plain_render = plain.evaluate(PLAIN_RENDER, data)
            plain_filters = [
                plain.evaluate(PLAIN_FILTER, OEMS[i % len(OEMS)][0]) for i in range(FILTER_ROUNDS)
            ]
        finally:
            plain.close()
    finally:
        page.close()
    note = f"{count}; filter: median of {FILTER_ROUNDS} OEM picks"
    return [
        BenchResult(
            name="sites view, 10,000 rows: first render",
            value=render_ms,
            unit="ms",
            baseline=plain_render,
            goal="smooth: well under 1 s",
            higher_is_better=False,
            note=f"{note}; from navigation start (the snapshot over SSE included); baseline: a "
            "plain <table> built with innerHTML (render only)",
        ),
        BenchResult(
            name="sites view, 10,000 rows: filter",
            value=statistics.median(filters),
            unit="ms",
            baseline=statistics.median(plain_filters),
            goal="smooth: under 100 ms",
            higher_is_better=False,
            note=note + "; baseline: hiding the plain table's other rows",
        ),
    ]


def run() -> list[BenchResult]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError("Debian's chromium is not installed: run `make ui-browser`")
    results: list[BenchResult] = []
    loop = LoopThread()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp_name,
            bench_broker(Path(tmp_name)) as kafka,
        ):
            tmp = Path(tmp_name)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    live = f"bench-ui-{uuid.uuid4().hex[:8]}."
                    loop.call(create_topics(kafka, live))
                    time.sleep(2.0)  # partition leaders elected before the first produce
                    with ui_server(kafka, live, tmp) as (ui, url):
                        wait_loaded(url, 0)
                        ctx = Ctx(loop, browser, kafka, live, url, ui)
                        results += latency(ctx)
                        results.append(cpu(ctx))
                    big = f"bench-ui-{uuid.uuid4().hex[:8]}."
                    loop.call(create_topics(kafka, big))
                    time.sleep(2.0)
                    t = now_us()
                    items = [telemetry_value(i, t) for i in range(ROWS)]
                    loop.call(produce_all(kafka, f"{big}site.telemetry", items))
                    with ui_server(kafka, big, tmp) as (ui, url):
                        wait_loaded(url, ROWS)
                        results += rows(Ctx(loop, browser, kafka, big, url, ui))
                finally:
                    browser.close()
    finally:
        loop.close()
    return results
