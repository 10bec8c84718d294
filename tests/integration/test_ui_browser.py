"""``flowerhub ui`` in a real browser: Debian's chromium driven by Playwright.

One rig for the module: the session's Kafka broker, the real streams worker (``flowerhub
streams worker``), three simulated homes (Huawei, Sungrow, SAJ: Modbus TCP servers) behind
one edge bridge, and ``flowerhub ui`` as its own process on 127.0.0.1. The page is driven
as a person would: it opens a view, types, picks a filter, and what the test checks is
what is on the screen.

- the Fleet view loads; fleet power and grid frequency change on screen while a scenario
  plays (an mFRR order the worker allocates, the grid frequency moved at the inverters);
- a fault injected on a simulator shows in the Sites view within 3 s (the bridge reads
  fault words every ``fault_interval_s``: its default, 2 s, is in that budget);
- filtering the Sites view by OEM leaves that OEM's sites;
- a command the simulator's firmware clamps (the Huawei inverter's own discharge limit,
  an installer setting the bridge does not read, is 2 kW; the bridge writes 4 kW) shows
  CLAMPED with the measured power, in the Sites row and the Site view, equal to the
  CommandResult on Kafka;
- the UI refuses a non-loopback bind without a token, and with a token asks every request
  for it.

Screenshots of every view go to ``out/ui-screenshots/`` (gitignored): the test artifacts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from contract.codec import encode, new_event
from contract.enums import CommandKind
from contract.kafka.settings import KafkaSettings, settings_for
from contract.topics import topic_for_event
from edge.bridge.sink import BridgeTopics
from edge.sim.battery import BatteryParams
from edge.testing.harness import SimBridge, SimSpec, new_command, produce_commands, read_events
from flowerhub.broker.probe import produce
from streams.app import prepare_topics, settings_with
from streams.worker_process import PROJECT_ROOT, Worker, run_worker, streams_worker
from tests import leakcheck

pytestmark = pytest.mark.integration
T = TypeVar("T")

CHROMIUM = "/usr/bin/chromium"
#: Debian's chromium as root in a closed network (see /work/.library/env/machines/polyglot.md)
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
SHOTS = PROJECT_ROOT / "out" / "ui-screenshots"
SITES = {"ui-hw": "huawei", "ui-sg": "sungrow", "ui-sj": "saj"}
CLAMP_SITE = "ui-hw"
CLAMP_LIMIT_W = 2000  # huawei max_discharge_limit (47077): the firmware's own cap
FAULT = ("alarm_1", 7, "Grid loss")  # huawei.alarm1.grid_loss, MAJOR
READY = re.compile(r"flowerhub ui: serving (\S+)")


def ui_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "flowerhub.cli", "ui", *args]


def ui_url(worker: Worker) -> str | None:
    match = READY.search(worker.log())
    return match.group(1) if match else None


@dataclass
class Rig:
    fleet: SimBridge
    topics: BridgeTopics
    settings: KafkaSettings
    prefix: str
    url: str
    page: Any  # playwright.sync_api.Page

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def open(self, view: str) -> None:
        self.page.goto(f"{self.url}#/{view}")
        self.page.wait_for_selector(f'main[data-view="{view.split("/", maxsplit=1)[0]}"]')


def _browser_or_fail() -> None:
    if shutil.which("chromium") is None or not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: run `make ui-browser`")


@pytest.fixture(scope="module")
def rig(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    _browser_or_fail()
    from playwright.sync_api import sync_playwright

    app_id = f"ui-{uuid.uuid4().hex[:8]}"
    settings = settings_with(bootstrap=kafka_bootstrap, app_id=app_id, prefix=f"{app_id}.")
    asyncio.run(prepare_topics(settings, partitions=1))
    topics = BridgeTopics(prefix=settings.topic_prefix)
    specs = [SimSpec(site, oem) for site, oem in SITES.items()]
    work = tmp_path_factory.mktemp("ui")
    fleet = SimBridge(
        specs,
        kafka=settings_for(kafka_bootstrap),
        state=work / "bridge",
        topics=topics,
        telemetry_interval_s=0.5,
        battery=BatteryParams(tau_s=0.4, dead_time_s=0.2),  # brisk: the suite stays fast
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    with (
        # the bridge fleet, worker and UI open files and threads as they go (outbox segments)
        leakcheck.shared_service("UI rig"),
        streams_worker(settings, work, partitions=1, loglevel="warn"),
        fleet,
        run_worker(
            ui_command(
                "--bootstrap", kafka_bootstrap, "--prefix", settings.topic_prefix, "--port", "0"
            ),
            work,
            lambda w: ui_url(w) is not None,
            env=env,
        ) as ui,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # the page's CSP forbids eval; Playwright's wait_for_function needs it (test only)
            page = browser.new_page(viewport={"width": 1500, "height": 1000}, bypass_csp=True)
            url = ui_url(ui)
            assert url is not None
            yield Rig(
                fleet, topics, settings_for(kafka_bootstrap), settings.topic_prefix, url, page
            )
        finally:
            browser.close()


def text_of(rig: Rig, selector: str) -> str:
    return str(rig.page.locator(selector).first.inner_text())


def wait_text(rig: Rig, selector: str, predicate: Any, timeout_s: float, what: str) -> str:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        last = text_of(rig, selector)
        if predicate(last):
            return last
        time.sleep(0.05)
    raise AssertionError(f"{what}: {selector} still shows {last!r} after {timeout_s} s")


MINUS = "\N{MINUS SIGN}"  # the page writes negative numbers with it


def mw_value(text: str) -> float:
    """'+0.012 MW' (or with a minus sign) -> float."""
    return float(text.replace(MINUS, "-").replace("MW", "").replace("+", "").strip())


def kafka(rig: Rig, coro: Coroutine[Any, Any, T]) -> T:
    """Run a Kafka coroutine on the bridge harness's loop thread (Playwright's sync API owns
    this thread's event loop)."""
    return rig.fleet.call(coro, timeout=60.0)


def send_event(rig: Rig, event: str, **fields: Any) -> dict[str, Any]:
    record = new_event(event, **fields)
    row = topic_for_event(event)
    value = encode(event, record)
    kafka(rig, produce(rig.settings, row.full_name(rig.prefix), [(row.key_of(record), value)]))
    return record


def set_frequency(rig: Rig, hz: float) -> None:
    def apply() -> None:
        for sim in rig.fleet.sims.values():
            sim.set_frequency(hz)

    rig.fleet.do(apply)


def site_cell(rig: Rig, site: str, field: str) -> Any:
    row = rig.page.locator("#sites-table .tabulator-row", has_text=site).first
    return row.locator(f'[tabulator-field="{field}"]')


def test_a_command_clamped_by_the_firmware_shows_clamped_with_its_measured_power(rig: Rig) -> None:
    """First in the module: no order is in force yet, so no allocator command supersedes it."""
    sim = rig.fleet.sims[CLAMP_SITE]
    rig.fleet.do(lambda: sim.registers.set("max_discharge_limit", CLAMP_LIMIT_W))
    command = new_command(CLAMP_SITE, CommandKind.SET_POWER, 4.0)
    kafka(rig, produce_commands(rig.settings, rig.topics.command_topic, [command]))
    results = kafka(
        rig,
        read_events(
            rig.settings,
            rig.topics.for_event("CommandResult"),
            lambda recs: any(r["command_id"] == command.command_id for r in recs),
            30.0,
        ),
    )
    (result,) = [r for r in results if r["command_id"] == command.command_id]
    assert result["status"] == "CLAMPED", result
    measured = f"{result['measured_kw']:+.2f} kW".replace("-", MINUS)
    assert result["written_kw"] == 4.0  # the bridge wrote what was asked
    assert result["measured_kw"] == pytest.approx(CLAMP_LIMIT_W / 1000, abs=0.4)
    rig.open("sites")
    rig.page.wait_for_selector('main[data-rendered="1"]')
    wait_text(
        rig,
        f'#sites-table .tabulator-row:has-text("{CLAMP_SITE}") [tabulator-field="result"]',
        lambda t: "CLAMPED" in t and measured in t,
        10,
        "the Sites row's last command",
    )
    rig.open(f"site/{CLAMP_SITE}")
    wait_text(rig, "#site-command .badge", lambda t: t == "CLAMPED", 10, "the Site view's result")
    assert text_of(rig, "#site-result-kw") == measured
    rig.page.wait_for_function("document.querySelectorAll('#site-timeline tbody tr').length > 0")
    rig.shot("site")
    rig.fleet.do(lambda: sim.registers.set("max_discharge_limit", 5000))


def test_an_injected_fault_shows_in_the_sites_view_within_3_s(rig: Rig) -> None:
    rig.open("sites")
    rig.page.wait_for_selector('main[data-rendered="1"]')
    site = "ui-hw"
    assert "none" in site_cell(rig, site, "faults").inner_text()
    point, bit, name = FAULT
    injected = time.monotonic()
    rig.fleet.do(lambda: rig.fleet.sims[site].inject_fault(point, bit))
    deadline = injected + 3.0
    text = ""
    while time.monotonic() < deadline:
        text = site_cell(rig, site, "faults").inner_text()
        if name in text:
            break
        time.sleep(0.05)
    shown_s = time.monotonic() - injected
    assert name in text, f"fault not shown after {shown_s:.2f} s: {text!r}"
    assert shown_s <= 3.0
    print(f"fault injected -> shown in the Sites view: {shown_s:.2f} s")  # noqa: T201  # figure
    rig.shot("sites")
    rig.fleet.do(rig.fleet.sims[site].clear_faults)


def test_filtering_the_sites_view_by_oem(rig: Rig) -> None:
    rig.open("sites")
    rig.page.wait_for_selector('main[data-rendered="1"]')
    rig.page.wait_for_function("document.querySelectorAll('#sites-oem option').length >= 4")
    rig.page.select_option("#sites-oem", "saj")
    rig.page.wait_for_function(
        "document.querySelector('#sites-count').textContent.startsWith('1 of')"
    )
    rows = rig.page.locator("#sites-table .tabulator-row")
    assert rows.count() == 1
    assert "ui-sj" in rows.first.inner_text()
    rig.page.select_option("#sites-oem", "")
    rig.page.fill("#sites-search", "ui-s")  # search: the Sungrow and the SAJ site
    rig.page.wait_for_function(
        "document.querySelector('#sites-count').textContent.startsWith('2 of')"
    )


def test_the_site_view_shows_the_time_range_an_audit_report_links(rig: Rig) -> None:
    """An audit report links an offender as ``#/site/<id>?from=...&to=...``: the Site view
    draws that range (its time axis), says which it is and offers the live view."""
    end = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=5)
    start = end - dt.timedelta(seconds=40)
    iso = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in (start, end)]
    rig.open(f"site/{CLAMP_SITE}?from={iso[0]}&to={iso[1]}")
    span = f"{start:%Y-%m-%d %H:%M:%S} UTC to {end:%Y-%m-%d %H:%M:%S} UTC"
    wait_text(rig, "#site-range-span", lambda t: t == span, 10, "the Site view's range")
    rig.page.wait_for_function(
        "document.querySelector('#main .chart-body') && "
        "document.querySelector('#main .chart-body').dataset.xMin"
    )
    axis = rig.page.evaluate(
        "(() => { const d = document.querySelector('#main .chart-body').dataset;"
        " return [Number(d.xMin), Number(d.xMax)]; })()"
    )
    assert axis == [start.timestamp(), end.timestamp()]
    assert rig.page.locator("#site-range a").get_attribute("href") == f"#/site/{CLAMP_SITE}"
    rig.shot("site-range")
    # a bad range is refused by the server, named
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{rig.url}api/site/{CLAMP_SITE}?from=yesterday", timeout=5)  # noqa: S310  # the rig's loopback URL
    assert refused.value.code == 400
    assert "'from' must be an ISO-8601 time" in refused.value.read().decode()


def test_fleet_power_and_frequency_change_on_screen_while_a_scenario_plays(rig: Rig) -> None:
    rig.open("fleet")
    before = wait_text(rig, "#tile-power .value", lambda t: "MW" in t, 30, "fleet power")
    wait_text(rig, "#tile-frequency .value", lambda t: t == "50.000 Hz", 15, "frequency")
    # the scenario: the grid frequency sags at the inverters, an mFRR up order of 3 x 4 kW
    # (at least the live compliance check's 0.01 MW, so the order is judged)
    set_frequency(rig, 49.87)
    now = dt.datetime.now(dt.UTC)
    send_event(
        rig,
        "MarketActivation",
        fleet_id="flowerhub",
        activation_id=f"ui-mfrr-{uuid.uuid4().hex[:6]}",
        product="MFRR",
        kind="ORDER",
        requested_mw=0.012,
        start_time=now,
        end_time=now + dt.timedelta(seconds=120),
        test_name=None,
        baseline_mw=0.0,
    )
    wait_text(rig, "#tile-frequency .value", lambda t: t == "49.870 Hz", 15, "frequency")
    after = wait_text(
        rig,
        "#tile-power .value",
        lambda t: "MW" in t and mw_value(t) - mw_value(before) > 0.004,
        45,
        f"fleet power (was {before})",
    )
    assert mw_value(after) > mw_value(before)
    # the order is judged live: target on the power tile, verdicts in the Activations view
    judged = re.compile(rf"target [+{MINUS}]\d")
    wait_text(rig, "#tile-power .tile-sub", lambda t: judged.search(t) is not None, 20, "target")
    rig.shot("fleet")
    rig.open("activations")
    wait_text(
        rig,
        "#activations-table .tabulator-row",
        lambda t: "MFRR" in t and "ORDER" in t,
        15,
        "activation row",
    )
    rig.page.locator("#activations-table .tabulator-row").first.click()
    rig.page.wait_for_function(
        "document.querySelectorAll('#detail-verdicts tbody tr').length >= 5", timeout=20_000
    )
    rig.shot("activations")
    set_frequency(rig, 50.0)


def test_the_ui_refuses_a_non_loopback_bind_without_a_token(rig: Rig, tmp_path: Path) -> None:
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWERHUB_UI_")}
    done = subprocess.run(  # the real CLI, refused before it binds anything
        ui_command("--host", "0.0.0.0", "--bootstrap", rig.settings.bootstrap_servers),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 2
    assert "refusing to serve the UI on 0.0.0.0 without authentication" in done.stderr
    # with a token (loopback here), every request needs it
    token = uuid.uuid4().hex
    with run_worker(
        ui_command(
            "--bootstrap", rig.settings.bootstrap_servers, "--prefix", rig.prefix, "--port", "0"
        ),
        tmp_path,
        lambda w: ui_url(w) is not None,
        env={**env, "FLOWERHUB_UI_TOKEN": token},
    ) as ui:
        url = ui_url(ui)
        assert url is not None
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}api/status", timeout=10)  # noqa: S310  # loopback
        assert refused.value.code == 401
        refused.value.close()
        request = urllib.request.Request(  # noqa: S310  # http on loopback
            f"{url}api/status", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  # loopback
            assert json.loads(response.read())["mode"] == "live"
        page = rig.page.context.browser.new_page(bypass_csp=True)
        try:
            page.goto(f"{url}?token={token}#/sites")  # sets the cookie, drops the token
            page.wait_for_selector('main[data-rendered="1"]', timeout=15_000)
            assert "token=" not in page.url
        finally:
            page.close()
