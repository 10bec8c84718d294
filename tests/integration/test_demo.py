"""`flowerhub demo` end to end at small scale: real broker, simulators, bridges, streams, audit.

The default scenario (FCR-N + FCR-D up + FCR-D down armed on the same homes, 30 s of them
covering their own load, then the FCR-D up ramp test and an mFRR order) runs on 6 sites, two
per OEM map, against the session broker; the audit's verdicts must equal the scenario's
expected verdicts rule by rule, its offenders table must be empty (judged on delivered power:
nothing is wrong with any home), the armed homes' extra grid import within 2 % of their load,
and the FCR-D ramp's Req 2/3 (once marginal, issue 7) must clear their thresholds by a
margin, in the 1 Hz event-log audit and in the demo's 10 Hz test rig log. A second run plays
``inverter_override`` (the overriding site must be among the audit's offenders, and the
others must take its share of the mFRR order: the fleet passes MFRR.FAT), then
``load_spike`` (a 6 kW load at a third of the armed homes: the order after it passes with no
offender, self-consumption kept). No process of a run may be left behind. The default run's
archive then goes through the README's replay flow (its inputs replayed with ``--max``, a
streams worker re-run on the copy, ``replay diff``): no difference in FleetStates, site
setpoints or commands (issue 18).

The default runs beside the other two (each under its own topic prefix, consumer groups and
run directory), so the set takes the time of the longest: about 5 minutes, most of it the
FCR-D ramp test, which the audit judges in real time.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from analytics.replay.diff_sources import DiffSide, read_archive_side, read_kafka_side
from contract.kafka.settings import KafkaSettings
from flowerhub.cli import main as flowerhub
from flowerhub.demo.orchestrate import WORKER_ENV_FILE, DemoOptions, DemoResult, run_demo
from flowerhub.demo.results import compare, margin, rule_status
from flowerhub.demo.scenario import DEFAULT_SCENARIO, load_scenario
from streams.agents.leading import LEADING_LINE
from streams.worker_process import PROJECT_ROOT, run_worker, wait_for

#: the three demo runs (one, then two side by side) are the first test's setup: on a loaded
#: 2-core runner they take longer than the suite's per-test timeout
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

SITES = 6
MIN_MARGIN = 0.05  # Req 2/3 above their thresholds by at least 5 % of the threshold


def _run(name: str, kafka: KafkaSettings, out: Path) -> tuple[DemoResult, str]:
    progress = io.StringIO()
    result = run_demo(
        DemoOptions(scenario=load_scenario(name), out=out, sites=SITES, kafka=kafka),
        progress=progress,
    )
    return result, progress.getvalue()


@pytest.fixture(scope="module")
def runs(
    kafka: KafkaSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[DemoResult, str]]]:
    def one(name: str) -> tuple[DemoResult, str]:
        return _run(name, kafka, tmp_path_factory.mktemp(name))

    # the default run alone (its FCR-D ramp margins are judged: not beside another demo on
    # a 2-core runner), then the other two side by side: as long as one after the other
    done = {DEFAULT_SCENARIO: one(DEFAULT_SCENARIO)}
    with ThreadPoolExecutor(2) as pool:
        others = {n: pool.submit(one, n) for n in ("inverter_override", "load_spike")}
        yield done | {n: f.result() for n, f in others.items()}


def test_default_scenario_verdicts_match_the_expectations(
    runs: dict[str, tuple[DemoResult, str]],
) -> None:
    scenario = load_scenario(DEFAULT_SCENARIO)
    result, log = runs[DEFAULT_SCENARIO]
    assert Counter(s.oem for s in result.sites) == {"huawei": 2, "saj": 2, "sungrow": 2}
    assert result.audit is not None, log
    assert result.audit.rows, f"no verdicts: {result.audit.error}\n{log}"
    checks = compare(scenario.expected, result.audit, result.sites, result.self_consumption)
    wrong = [c for c in checks if not c.ok]
    assert not wrong, f"{wrong}\n{result.audit.rows}\n{result.audit.offenders}\n{log}"
    assert result.audit.offenders == []  # on delivered power: nothing wrong with any home
    assert result.self_consumption is not None
    assert result.self_consumption.extra_pct <= 2.0, result.self_consumption.describe()
    # every expected rule was judged on its own activation, not only found PASS overall
    for rule_id, verdict in scenario.expected.verdicts.items():
        assert rule_status(result.audit.rows, rule_id) == verdict.value
    assert (result.report / "demo-verdicts.json").is_file()
    assert result.leftover_pids == [], log
    assert "armed on every home at once: FCR_N" in log
    assert "FCR_D_UP" in log
    assert "FCR_D_DOWN" in log
    assert "phase armed" in log
    assert "phase fcrd_up_ramp" in log
    assert "phase mfrr_up" in log
    assert result.peak_rss_bytes > 0


def test_fcrd_ramp_passes_with_a_margin_in_the_audit_and_at_the_inverters(
    runs: dict[str, tuple[DemoResult, str]],
) -> None:
    """Req 2 (ΔP at 7.5 s) and Req 3 (energy in 7.5 s) were marginal before the bridge's
    reserve fast loop (issue 7): both must clear their threshold by MIN_MARGIN, in the 1 Hz
    event-log audit and in the 10 Hz test rig log of the simulated inverters."""
    result, log = runs[DEFAULT_SCENARIO]
    assert result.audit is not None, log
    (rig,) = [r for r in result.rig if r.phase == "fcrd_up_ramp"]
    assert rig.error is None, rig.error
    for source, rows in (("event-log audit", result.audit.rows), ("test rig", rig.rows())):
        for rule_id in ("FCRD_UP.REQ2.DP75", "FCRD_UP.REQ3.E75"):
            found = [r for r in rows if r["rule_id"] == rule_id]
            assert len(found) == 1, f"{source}: {rule_id} judged {len(found)} times: {rows}"
            got = margin(found[0])
            assert got is not None, found[0]
            assert got >= MIN_MARGIN, f"{source} {rule_id}: margin {got:+.1%} {found}\n{log}"
    assert list((result.report / "rig").glob("*_FcrdUp_Ramp_*_100ms_*.csv"))


def test_overriding_inverter_is_an_offender(runs: dict[str, tuple[DemoResult, str]]) -> None:
    scenario = load_scenario("inverter_override")
    result, log = runs["inverter_override"]
    assert result.audit is not None, log
    assert result.audit.rows, log
    (index,) = scenario.expected.offender_sites
    site = result.sites[index].site_id
    kinds = {o["kind"] for o in result.audit.offenders if o["site_id"] == site}
    assert kinds, f"{site} not among offenders {result.audit.offenders}\n{log}"
    assert kinds & {"OVERRIDDEN", "NO_RESPONSE", "CLAMPED"}, kinds
    checks = compare(scenario.expected, result.audit, result.sites)
    # the overriding home gives up its share of the order, the others take it: the fleet
    # still delivers the whole order in time
    assert [c.what for c in checks if c.what == "MFRR.FAT"], checks
    wrong = [c for c in checks if not c.ok]
    assert not wrong, f"{wrong}\n{result.audit.rows}\n{result.audit.offenders}\n{log}"
    assert result.leftover_pids == [], log


def test_load_spike_moves_shares_and_keeps_self_consumption(
    runs: dict[str, tuple[DemoResult, str]],
) -> None:
    scenario = load_scenario("load_spike")
    result, log = runs["load_spike"]
    assert result.audit is not None, log
    assert result.audit.rows, f"no verdicts: {result.audit.error}\n{log}"
    assert log.count("a 6 kW load switches on") == len(scenario.incidents[0].sites(SITES)), log
    checks = compare(scenario.expected, result.audit, result.sites, result.self_consumption)
    wrong = [c for c in checks if not c.ok]
    assert not wrong, f"{wrong}\n{result.audit.rows}\n{result.audit.offenders}\n{log}"
    assert result.self_consumption is not None
    assert result.self_consumption.extra_pct <= 2.0, result.self_consumption.describe()
    assert result.leftover_pids == [], log


#: README "How to replay and debug": the inputs of a run (a topic the run never wrote is
#: not in its archive and is skipped) and the outputs compared
REPLAYED = (
    "market.activations",
    "market.fleet-setpoints",
    "reserve.assignments",
    "site.telemetry",
    "site.device-status",
    "site.command-results",
    "site.faults",
)
COMPARED = ("fleet.state", "site.setpoints", "site.commands")


def _archived_prefix(archive: Path) -> str:
    (found,) = [
        d.name.removeprefix("topic=").removesuffix("site.telemetry")
        for d in archive.glob("topic=*site.telemetry")
    ]
    return found


def _worker_env(run_dir: Path) -> dict[str, str]:
    lines = (run_dir / WORKER_ENV_FILE).read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line)


def test_the_readme_replay_flow_reproduces_the_default_run(
    runs: dict[str, tuple[DemoResult, str]],
    kafka: KafkaSettings,
    unique_name: Callable[[str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The default run's archive: its inputs replayed with ``--max`` into a new prefix, a
    streams worker (with the run's settings) re-run on the copy, then ``replay diff``
    against the run's archive: the same FleetStates, site setpoints and commands (ids and
    ingest times aside), as the README's flow promises (issue 18)."""
    from streams.app import READY_MESSAGE  # imports Faust: only here

    result, _ = runs[DEFAULT_SCENARIO]
    source = _archived_prefix(result.archive)
    copy = unique_name("replay") + "."
    connect = ["--bootstrap", kafka.bootstrap_servers]
    replay = ["replay", *connect, "--log", str(result.archive), "--source-prefix", source]
    assert flowerhub([*replay, "--prefix", copy, "--max", "--topics", *REPLAYED]) == 0
    assert f"into {copy}*" in capsys.readouterr().out
    diff_json = tmp_path / "diff.json"
    diff = [
        *("replay", "diff", *connect, "--topics", *COMPARED, "--json", str(diff_json)),
        *("--left", f"archive:{result.archive}:{source}", "--right", f"kafka:{copy}"),
    ]
    left = read_archive_side(DiffSide(source, result.archive), COMPARED)
    counts = Counter(e.topic for e in left)
    assert all(counts[t] > 0 for t in COMPARED), counts
    command = [sys.executable, "-m", "flowerhub.cli", "streams", "worker", *connect]
    command += ["--prefix", copy, "--app-id", copy.rstrip("."), "--loglevel", "warn"]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **_worker_env(result.run_dir)}
    with run_worker(command, tmp_path, lambda w: READY_MESSAGE in w.log(), env=env) as worker:

        def caught_up() -> bool:  # every output of the run has its counterpart by now
            right = asyncio.run(read_kafka_side(DiffSide(copy), kafka, COMPARED))
            return Counter(e.topic for e in right) >= counts

        wait_for("the re-run's outputs", worker, caught_up, timeout_s=120)
        time.sleep(3.0)  # anything more (a window twice, a late setpoint) would show now
        code = flowerhub(diff)
        worker_log = worker.log()
    report = json.loads(diff_json.read_text(encoding="utf-8"))
    assert code == 0, f"{capsys.readouterr().out}\n{worker_log[-4000:]}"
    assert report["identical"] is True
    assert worker_log.count(LEADING_LINE) == 1, worker_log[-4000:]
