"""deploy/: the Prometheus scrape config and the Grafana dashboard, checked without a running
Prometheus or Grafana.

- ``deploy/prometheus.yml`` passes ``promtool check config`` (Debian's promtool, ``make
  promtool``) and scrapes exactly the compose services that serve ``/metrics``, on the port
  each one's command gives (``--metrics-port``, bound to ``0.0.0.0`` in its container);
- every dashboard panel uses the provisioned Prometheus data source (the compose services that
  mount deploy/: tests/contract/test_compose.py);
- every series a dashboard query names is one the services really expose: the families are
  read from the real collectors (``streams.metrics``, ``edge.bridge.metrics``,
  ``flowerhub.gateway.metrics``) of a worker, a bridge and a gateway built without a broker,
  with the type the query's suffix needs (``_total`` only on counters, ``_bucket`` only on
  histograms), every label a selector, a ``by (...)`` or a legend names, and every label
  value a selector compares to exactly (where the family shows its values from the start);
- the panels the issue names are there: command latency, Modbus errors, outbox depth,
  consumer lag, sites online, dead letters, setpoint filter drops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from contract.kafka.settings import KafkaSettings
from contract.metrics import PORTS
from contract.mqtt.settings import MqttSettings
from edge.bridge.config import parse_config
from edge.bridge.metrics import BridgeMetrics
from edge.bridge.runtime import Bridge
from edge.hal.maps import load_all
from flowerhub.cli import build_parser
from flowerhub.gateway.metrics import gateway_registry
from flowerhub.gateway.service import Gateway
from streams.app import build, settings_with
from streams.metrics import WorkerCollector
from streams.testing.agents import close_app

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "flowerhub.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROMTOOL = ROOT / ".cache" / "promtool" / "root" / "usr" / "bin" / "promtool"
#: labels Prometheus adds (job, instance) or a histogram's/summary's samples carry
TARGET_LABELS = frozenset({"job", "instance"})
#: the services' compose names -> the kind of /metrics (contract.metrics.PORTS' keys)
SERVICE_KIND = {"streams": "streams", "bridge": "bridge", "gateway": "gateway"}
SERIES = re.compile(r"\b(flowerhub_[a-z0-9_]+)\b")
SELECTOR = re.compile(r"\b(flowerhub_[a-z0-9_]+)\{([^}]*)\}")
MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"\s*,?')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
LEGEND = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


@dataclass
class Family:
    """One exposed family: its type, label names and the label values seen."""

    type: str
    labels: set[str] = field(default_factory=set)
    values: dict[str, set[str]] = field(default_factory=dict)


def _families(registry: CollectorRegistry, into: dict[str, Family]) -> None:
    for metric in registry.collect():
        fam = into.setdefault(metric.name, Family(metric.type))
        assert fam.type == metric.type, f"{metric.name}: {fam.type} here, {metric.type} there"
        # a labelled family with no rows yet (no dead letter so far) still names its labels
        fam.labels |= set(getattr(metric, "_labelnames", ()))
        for sample in metric.samples:
            for name, value in sample.labels.items():
                if name in ("le", "quantile"):
                    continue
                fam.labels.add(name)
                fam.values.setdefault(name, set()).add(value)


def _bridge_config(tmp: Path) -> Any:
    sites = [
        {
            "site_id": f"deploy-{oem}",
            "oem": oem,
            "host": "127.0.0.1",
            "port": 1502 + i,
            "rated_power_kw": 10,
            "battery": {"max_charge_kw": 5, "max_discharge_kw": 5, "capacity_kwh": 10},
        }
        for i, oem in enumerate(sorted(load_all()))
    ]
    return parse_config(
        {
            "bridge_id": "deploy-check",
            "state_dir": str(tmp / "state"),
            "outbox": {"dir": str(tmp / "outbox")},
            "sites": sites,
        }
    )


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Family]:
    """Every family the three services expose, from their real collectors (never started:
    no broker, no Modbus peer; the collectors read the same objects a running service has)."""
    tmp = tmp_path_factory.mktemp("deploy")
    families: dict[str, Family] = {}
    built = build(settings_with(bootstrap="127.0.0.1:9", app_id="deploy-check"))
    try:
        registry = CollectorRegistry()
        registry.register(WorkerCollector(built))
        _families(registry, families)
    finally:
        close_app(built)
    bridge = Bridge(_bridge_config(tmp), kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"))
    try:
        _families(BridgeMetrics(bridge).registry, families)
    finally:
        asyncio.run(bridge.close())
    mqtt = MqttSettings(host="127.0.0.1", port=1, ca_file=tmp / "ca.pem")
    gateway = Gateway("deploy", mqtt, KafkaSettings(bootstrap_servers="127.0.0.1:9"))
    _families(gateway_registry(gateway), families)
    return families


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def _queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target


def _family_of(series: str, exposed: dict[str, Family]) -> tuple[str, str]:
    """The family a PromQL series name belongs to, and its sample suffix."""
    if series in exposed:
        return series, ""
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        base = series.removesuffix(suffix)
        if base != series and base in exposed:
            return base, suffix
    raise AssertionError(f"{series}: no service exposes it")


SUFFIX_TYPES = {
    "": {"gauge", "unknown", "info"},
    "_total": {"counter"},
    "_bucket": {"histogram"},
    "_count": {"histogram", "summary"},
    "_sum": {"histogram", "summary"},
}


def _parse(command: list[str]) -> argparse.Namespace:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return build_parser().parse_args(command)
    except SystemExit:
        pytest.fail(f"`flowerhub {' '.join(command)}` is not a valid command: {err.getvalue()}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    data = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


# --------------------------------------------------------------------- the scrape config


def test_promtool_accepts_the_scrape_config() -> None:
    promtool = PROMTOOL if PROMTOOL.is_file() else shutil.which("promtool")
    if promtool is None:
        pytest.skip("no promtool: `make promtool` fetches Debian's (make test does)")
    done = subprocess.run(  # fixed arguments
        [str(promtool), "check", "config", str(PROMETHEUS)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode()
    assert b"SUCCESS" in done.stdout + done.stderr


def _metrics_services(compose: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """Compose services serving /metrics: name -> (kind, port), from their commands."""
    out: dict[str, tuple[str, int]] = {}
    for name, svc in compose["services"].items():
        command = svc.get("command")
        if not svc.get("image", "").startswith("flowerhub") or "--metrics-port" not in command:
            continue
        args = _parse(command)
        assert args.metrics_host == "0.0.0.0", f"{name}: Prometheus scrapes it over the network"
        kind = SERVICE_KIND[command[0]]
        port = int(args.metrics_port)
        assert port == PORTS[kind], f"{name}: the project's port for a {kind} is {PORTS[kind]}"
        out[name] = (kind, port)
    return out


def test_every_service_with_metrics_is_scraped_on_its_port(
    compose: dict[str, Any], prometheus: dict[str, Any]
) -> None:
    serving = _metrics_services(compose)
    services = compose["services"]
    # the worker, every bridge and every gateway serve /metrics
    expected = {"streams-worker"} | {n for n in services if n.startswith(("bridge-", "gateway-"))}
    assert set(serving) == expected
    scraped: dict[str, tuple[str, int]] = {}
    for job in prometheus["scrape_configs"]:
        if job["job_name"] == "prometheus":
            assert job["static_configs"][0]["targets"] == ["localhost:9090"]
            continue
        kind = job["job_name"].removeprefix("flowerhub-")
        assert kind in PORTS, job["job_name"]
        targets = [t for c in job.get("static_configs", []) for t in c["targets"]]
        targets += [f"{n}:{c['port']}" for c in job.get("dns_sd_configs", []) for n in c["names"]]
        assert targets, job["job_name"]
        for target in targets:
            host, port = target.rsplit(":", 1)
            assert host in services, f"{target}: no such compose service"
            assert host not in scraped, f"{host} scraped twice"
            scraped[host] = (kind, int(port))
    assert scraped == serving


# ------------------------------------------------------------------------ the dashboard


def test_every_panel_uses_the_provisioned_prometheus(dashboard: dict[str, Any]) -> None:
    uid = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"][0]["uid"]
    panels = [p for p in _panels(dashboard) if p["type"] != "row"]
    assert panels
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]
            assert SERIES.search(target["expr"]), f"{panel['title']}: no FlowerHub series"
    assert dashboard["uid"]
    assert dashboard["title"]


def test_every_series_label_and_value_the_dashboard_names_is_exposed(
    dashboard: dict[str, Any], exposed: dict[str, Family]
) -> None:
    for title, target in _queries(dashboard):
        expr: str = target["expr"]
        where = f"{title}: {expr}"
        families: dict[str, Family] = {}
        histogram = False
        for series in SERIES.findall(expr):
            name, suffix = _family_of(series, exposed)
            fam = exposed[name]
            assert fam.type in SUFFIX_TYPES[suffix], f"{where}: {series} on a {fam.type}"
            histogram |= suffix == "_bucket"
            families[series] = fam
        for series, matchers in SELECTOR.findall(expr):
            fam = families[series]
            parsed = MATCHER.findall(matchers)
            assert "".join(m[0] for m in parsed), f"{where}: no matcher in {{{matchers}}}"
            for label, op, value in parsed:
                assert label in fam.labels | TARGET_LABELS, f"{where}: {series} has no {label}"
                known = fam.values.get(label)
                if known is None:
                    continue
                wanted = value.split("|") if op == "=~" else [value] if op == "=" else []
                assert set(wanted) <= known, f"{where}: {label} is one of {sorted(known)}"
        labels = set().union(*(f.labels for f in families.values())) | TARGET_LABELS
        grouped: set[str] = set()
        for group in GROUPING.findall(expr):
            names = {n.strip() for n in group.split(",") if n.strip()}
            extra = {"le"} if histogram else set()
            assert names <= labels | extra, f"{where}: {sorted(names - labels - extra)}"
            grouped |= names
        legend = set(LEGEND.findall(target.get("legendFormat", "")))
        allowed = grouped if GROUPING.search(expr) else labels
        assert legend <= allowed, f"{where}: the legend names {sorted(legend - allowed)}"


def test_the_panels_the_issue_names_are_there(dashboard: dict[str, Any]) -> None:
    used: dict[str, set[str]] = {}
    for title, target in _queries(dashboard):
        for series in SERIES.findall(target["expr"]):
            used.setdefault(series, set()).add(title)
    needed = {
        "command latency": "flowerhub_bridge_command_latency_seconds_bucket",
        "Modbus errors": "flowerhub_modbus_errors_total",
        "outbox depth": "flowerhub_outbox_events",
        "consumer lag": "flowerhub_consumer_lag_records",
        "sites online": "flowerhub_fleet_sites",
        "dead letters": "flowerhub_dead_letters_total",
        "filter drops": "flowerhub_filter_setpoints_total",
        "Kafka delivery failures": "flowerhub_kafka_delivery_failures_total",
        "gateway uplink": "flowerhub_gateway_uplink_acknowledged_total",
    }
    missing = {what for what, series in needed.items() if series not in used}
    assert not missing, f"no panel for {sorted(missing)}"
    # the filter panel shows every reason that drops or holds back a setpoint
    exprs = " ".join(t["expr"] for _, t in _queries(dashboard))
    assert 'outcome="dropped"' in exprs
    assert 'outcome="held"' in exprs
    assert 'reason="DEFERRED"' in exprs


def test_the_checks_above_see_every_service(exposed: dict[str, Family]) -> None:
    """The exposed families come from all three services (a collector that failed to build
    would make the dashboard check vacuous for its series)."""
    for family in (
        "flowerhub_filter_setpoints",  # streams worker
        "flowerhub_fleet_sites",
        "flowerhub_bridge_command_latency_seconds",  # bridge
        "flowerhub_modbus_errors",
        "flowerhub_gateway_uplink_acknowledged",  # gateway
        "flowerhub_dead_letters",  # all
    ):
        assert family in exposed, family
    oems = exposed["flowerhub_modbus_errors"].values["oem"]
    assert oems == set(load_all())
    assert exposed["flowerhub_bridge_command_latency_seconds"].type == "histogram"
