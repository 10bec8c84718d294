"""docker-compose.yml checked without a Docker engine (none here, and no compose plugin).

The file is parsed as YAML (anchors and merge keys resolved as compose does) and checked for
the deployment's shape: three KRaft brokers with a quorum of three, replication 3 and min
ISR 2; a topics job the Python services wait for; two streams workers restarted when they
die (they share the partitions and elect a leader), on brokers that allow their session;
the archiver; a simulator and a bridge per OEM register map; every
command a real `flowerhub` verb that the CLI parser accepts; healthchecks where a
dependency waits for health; bridge configs that load and point at their simulators.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.bridge.config import load_config
from edge.hal.maps import load_all
from flowerhub.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
KAFKA = ("kafka-1", "kafka-2", "kafka-3")
GRAFANA = ROOT / "deploy" / "grafana"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    svc = compose["services"]
    assert isinstance(svc, dict)
    return svc


def _flowerhub_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services.items() if s.get("image", "").startswith("flowerhub")}


def _parse(command: list[str]) -> argparse.Namespace:
    """Parse a service's command with the real CLI parser; argparse errors become failures."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return build_parser().parse_args(command)
    except SystemExit:
        pytest.fail(f"`flowerhub {' '.join(command)}` is not a valid command: {err.getvalue()}")


def test_compose_config_with_the_plugin_when_it_exists() -> None:
    docker = shutil.which("docker")
    probe = (
        subprocess.run(  # fixed arguments
            [docker, "compose", "version"], capture_output=True, timeout=20, check=False
        )
        if docker
        else None
    )
    if probe is None or probe.returncode != 0:
        pytest.skip("no docker compose plugin here; the schema tests below check the file")
    assert docker is not None
    done = subprocess.run(  # fixed arguments
        [docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()


def test_three_kraft_nodes_with_a_quorum_of_three(services: dict[str, dict[str, Any]]) -> None:
    for node_id, name in enumerate(KAFKA, start=1):
        svc = services[name]
        env = svc["environment"]
        assert svc["image"].startswith("apache/kafka:")
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_NODE_ID"] == str(node_id)
        voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
        assert sorted(voters) == [f"{i}@kafka-{i}:9093" for i in (1, 2, 3)]
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
        assert "CONTROLLER://:9093" in env["KAFKA_LISTENERS"]
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])
        assert "kafka-broker-api-versions.sh" in " ".join(svc["healthcheck"]["test"])
    ids = {services[n]["environment"]["CLUSTER_ID"] for n in KAFKA}
    assert len(ids) == 1, "every node of one cluster carries the same cluster id"


def test_python_services_are_the_repo_image(services: dict[str, dict[str, Any]]) -> None:
    ours = _flowerhub_services(services)
    assert set(ours) >= {"topics-init", "streams-worker", "archiver"}
    for name, svc in ours.items():
        assert svc["build"] == ".", name
        assert (ROOT / "Dockerfile").is_file()
        env = svc["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == ",".join(f"{k}:9092" for k in KAFKA), name
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert 'ENTRYPOINT ["flowerhub"]' in dockerfile
    assert "FROM python:3.11" in dockerfile


def test_every_command_is_a_real_flowerhub_verb(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in _flowerhub_services(services).items():
        command = svc["command"]
        assert isinstance(command, list), name
        assert command, name
        args = _parse(command)
        assert callable(args.func), f"{name}: `{' '.join(command)}` has no handler"


def test_topics_job_first_with_replication_three(services: dict[str, dict[str, Any]]) -> None:
    init = services["topics-init"]
    args = _parse(init["command"])
    assert args.replication_factor == 3
    assert init["restart"] == "no"
    for node in KAFKA:
        assert init["depends_on"][node] == {"condition": "service_healthy"}
    for name, svc in _flowerhub_services(services).items():
        if name == "topics-init" or name.startswith("sim-"):
            continue
        dep = svc["depends_on"]["topics-init"]
        assert dep == {"condition": "service_completed_successfully"}, name


def test_two_streams_workers_restarted_when_they_die(
    services: dict[str, dict[str, Any]],
) -> None:
    worker = services["streams-worker"]
    args = _parse(worker["command"])
    assert args.verb == "worker"
    assert args.replication_factor == 3, "internal changelogs need RF 3 with min ISR 2"
    # N workers share the partitions and elect one leader (streams.agents.leader): two, so
    # one can die; each restarted by the engine
    assert worker["deploy"]["replicas"] == 2
    assert worker["restart"] == "unless-stopped"
    assert "container_name" not in worker, "a fixed container name cannot be rescheduled"
    # the workers' group session (3 s) must be allowed by every broker (default floor 6 s)
    from streams.settings import StreamsSettings

    session_ms = StreamsSettings().workers.session_timeout_s * 1000
    for name in KAFKA:
        floor = services[name]["environment"]["KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS"]
        assert int(floor) <= session_ms, name


def test_archiver_keeps_its_files_on_a_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    archiver = services["archiver"]
    args = _parse(archiver["command"])
    assert str(args.out).startswith("/data")
    volume = archiver["volumes"][0].split(":")
    assert volume[1] == "/data"
    assert volume[0] in compose["volumes"]


def test_a_simulator_and_a_bridge_per_oem_map(services: dict[str, dict[str, Any]]) -> None:
    oems = sorted(load_all())
    for oem in oems:
        sim = _parse(services[f"sim-{oem}"]["command"])
        assert sim.oem == oem
        assert sim.host == "0.0.0.0"
        ports = set(range(sim.port, sim.port + sim.count))
        health = " ".join(services[f"sim-{oem}"]["healthcheck"]["test"])
        assert str(sim.port) in health

        bridge = services[f"bridge-{oem}"]
        args = _parse(bridge["command"])
        mount = next(v for v in bridge["volumes"] if v.endswith(f":{args.config}:ro"))
        config = load_config(ROOT / mount.split(":")[0])
        assert {s.oem for s in config.sites} == {oem}
        assert {s.host for s in config.sites} == {f"sim-{oem}"}
        assert {s.port for s in config.sites} <= ports, f"{oem}: a site has no simulator"
        assert str(config.state_dir).startswith("/data")
        assert bridge["depends_on"][f"sim-{oem}"] == {"condition": "service_healthy"}


def test_every_health_dependency_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health"


def test_homes_reach_kafka_only_through_mosquitto_and_the_gateways(
    services: dict[str, dict[str, Any]],
) -> None:
    from contract.mqtt.layout import acl_lines
    from edge.bridge.config import Transport

    certs = _parse(services["mqtt-certs"]["command"])
    assert "mosquitto" in certs.server_name
    acl = (ROOT / "deploy" / "mosquitto.acl").read_text(encoding="utf-8").splitlines()
    rules = [line for line in acl if line and not line.startswith("#")]
    assert rules == [line for line in acl_lines(certs.gateway) if line and line[0] != "#"]
    conf = (ROOT / "deploy" / "mosquitto.conf").read_text(encoding="utf-8").splitlines()
    for must in ("allow_anonymous false", "require_certificate true", "listener 8883 0.0.0.0"):
        assert must in conf
    assert [line for line in conf if line.startswith(("listener", "port "))] == [
        "listener 8883 0.0.0.0"
    ]  # TLS only
    for name in certs.gateway:
        gateway = _parse(services[f"gateway-{name}"]["command"])
        assert gateway.name == name
        assert str(gateway.mqtt_cert).endswith(f"gateway@{name}.pem")
    for oem in sorted(load_all()):
        bridge = services[f"bridge-{oem}"]
        args = _parse(bridge["command"])
        mount = next(v for v in bridge["volumes"] if v.endswith(f":{args.config}:ro"))
        config = load_config(ROOT / mount.split(":")[0])
        assert config.uplink is Transport.MQTT
        assert config.mqtt is not None
        assert config.mqtt.host == "mosquitto"
        assert {s.site_id for s in config.sites} <= set(certs.site), f"{oem}: a site lacks a cert"


def test_prometheus_and_grafana_services(compose: dict[str, Any]) -> None:
    """Prometheus with deploy/prometheus.yml (its contents: tests/contract/test_deploy.py) and
    its data on a volume; Grafana provisioned from deploy/grafana/, with an admin password
    compose insists on and no anonymous access; both on the host's loopback only."""
    services = compose["services"]
    prom = services["prometheus"]
    assert prom["image"].startswith("prom/prometheus:v")
    config_file = next(a for a in prom["command"] if a.startswith("--config.file="))
    mount = f"./deploy/prometheus.yml:{config_file.split('=', 1)[1]}:ro"
    assert mount in prom["volumes"]
    assert any(v.startswith("prometheus:") for v in prom["volumes"])  # its TSDB on a volume
    assert prom["ports"] == ["127.0.0.1:9090:9090"]  # the host's loopback only
    assert "/-/ready" in " ".join(prom["healthcheck"]["test"])

    grafana = services["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    assert grafana["ports"] == ["127.0.0.1:3000:3000"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    provisioning = ROOT / mounts["/etc/grafana/provisioning"]
    assert provisioning == GRAFANA / "provisioning"
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "flowerhub.yml").read_text(encoding="utf-8")
    )["providers"]
    dashboards_dir = providers[0]["options"]["path"]
    assert ROOT / mounts[dashboards_dir] == GRAFANA / "dashboards"
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_dir}/flowerhub.json"
    assert grafana["depends_on"]["prometheus"] == {"condition": "service_healthy"}
    for volume in ("prometheus", "grafana"):
        assert volume in compose["volumes"]
    # Grafana reaches Prometheus by its compose name, on Prometheus' port
    source = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )["datasources"][0]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
