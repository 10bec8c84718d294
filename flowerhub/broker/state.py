"""The state file of a running local cluster, and what /proc says about its java processes.

``<data_dir>/cluster.json`` records pids, ports and the bootstrap string so that `status`,
`stop`, fault helpers and tests in another process find the cluster. A process counts as
ours only if its command line names our node's server.properties (pid reuse is real).
Linux-only by design (/proc); the machines the project runs on are Linux.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from contract.kafka.cliargs import KafkaOptions
from contract.kafka.settings import KafkaSettings, SaslMechanism, SecurityProtocol
from flowerhub.broker.config import ClusterPlan, NodePlan, plan_cluster

STATE_FILE = "cluster.json"
STATE_VERSION = 1


class StateFileError(ValueError):
    """The state file exists but cannot be read as a cluster state."""


@dataclass(frozen=True)
class NodeState:
    node_id: int
    pid: int
    broker_port: int
    controller_port: int
    properties: str  # absolute path of the node's server.properties
    log_file: str  # absolute path of server.log
    ssl_port: int | None = None  # the TLS listeners (broker start --tls)
    sasl_ssl_port: int | None = None


@dataclass(frozen=True)
class TlsState:
    """How a client reaches the TLS listeners: both bootstrap strings, the CA to trust, the
    client certificate (mutual TLS on SSL) and the SASL user with its password file."""

    ssl_bootstrap: str
    sasl_ssl_bootstrap: str
    ca_file: str
    client_cert: str
    client_key: str
    sasl_username: str
    sasl_password_file: str


@dataclass(frozen=True)
class ClusterState:
    data_dir: str
    cluster_id: str
    kafka_version: str
    bootstrap: str
    nodes: tuple[NodeState, ...]
    started_at: float  # unix time
    startup_seconds: float
    tls: TlsState | None = None

    def node(self, node_id: int) -> NodeState:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise StateFileError(
            f"no node {node_id} in the cluster at {self.data_dir} "
            f"(nodes: {[n.node_id for n in self.nodes]})"
        )

    def with_node(self, node: NodeState) -> ClusterState:
        return replace(
            self, nodes=tuple(node if n.node_id == node.node_id else n for n in self.nodes)
        )

    def plan(self) -> ClusterPlan:
        ports = [p for n in self.nodes for p in (n.broker_port, n.controller_port)]
        return plan_cluster(self.cluster_id, Path(self.data_dir), ports)


def node_state(plan: ClusterPlan, node: NodePlan, pid: int) -> NodeState:
    node_dir = plan.node_dir(node.node_id)
    return NodeState(
        node_id=node.node_id,
        pid=pid,
        broker_port=node.broker_port,
        controller_port=node.controller_port,
        properties=str(node_dir / "server.properties"),
        log_file=str(node_dir / "server.log"),
        ssl_port=node.ssl_port,
        sasl_ssl_port=node.sasl_ssl_port,
    )


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


def write_state(state: ClusterState) -> Path:
    path = state_path(Path(state.data_dir))
    tmp = path.with_suffix(".json.tmp")
    body = {"version": STATE_VERSION, **asdict(state)}
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    tmp.replace(path)
    return path


def read_state(data_dir: Path) -> ClusterState | None:
    """The recorded state, or None when no state file exists."""
    path = state_path(data_dir)
    try:
        raw: Any = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise StateFileError(f"{path}: unreadable cluster state ({exc})") from exc
    try:
        if raw.get("version") != STATE_VERSION:
            raise StateFileError(f"{path}: state version {raw.get('version')!r} unknown")
        nodes = tuple(NodeState(**n) for n in raw["nodes"])
        return ClusterState(
            data_dir=str(raw["data_dir"]),
            cluster_id=str(raw["cluster_id"]),
            kafka_version=str(raw["kafka_version"]),
            bootstrap=str(raw["bootstrap"]),
            nodes=nodes,
            started_at=float(raw["started_at"]),
            startup_seconds=float(raw["startup_seconds"]),
            tls=None if raw.get("tls") is None else TlsState(**raw["tls"]),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, StateFileError):
            raise
        raise StateFileError(f"{path}: malformed cluster state ({exc!r})") from exc


def kafka_options(state: ClusterState, protocol: SecurityProtocol | None = None) -> KafkaOptions:
    """How to reach the cluster with ``protocol``: PLAINTEXT, SSL (mutual TLS) or SASL_SSL
    (PLAIN); None picks SASL_SSL when the cluster has TLS listeners, else PLAINTEXT."""
    tls = state.tls
    if protocol is None:
        protocol = SecurityProtocol.PLAINTEXT if tls is None else SecurityProtocol.SASL_SSL
    if protocol is SecurityProtocol.PLAINTEXT:
        return KafkaOptions(bootstrap_servers=state.bootstrap, security_protocol=protocol)
    if tls is None:
        raise StateFileError(
            f"the cluster at {state.data_dir} has no {protocol} listener: start it with --tls"
        )
    if protocol is SecurityProtocol.SSL:
        return KafkaOptions(
            bootstrap_servers=tls.ssl_bootstrap,
            security_protocol=protocol,
            ssl_cafile=Path(tls.ca_file),
            ssl_certfile=Path(tls.client_cert),
            ssl_keyfile=Path(tls.client_key),
        )
    if protocol is SecurityProtocol.SASL_SSL:
        return KafkaOptions(
            bootstrap_servers=tls.sasl_ssl_bootstrap,
            security_protocol=protocol,
            ssl_cafile=Path(tls.ca_file),
            sasl_mechanism=SaslMechanism.PLAIN,
            sasl_username=tls.sasl_username,
            sasl_password_file=Path(tls.sasl_password_file),
        )
    raise StateFileError(f"the local cluster has no {protocol} listener")


def kafka_settings(state: ClusterState, protocol: SecurityProtocol | None = None) -> KafkaSettings:
    """:func:`kafka_options` as settings (the environment is not read)."""
    return KafkaSettings.model_validate(kafka_options(state, protocol).given())


def remove_state(data_dir: Path) -> None:
    state_path(data_dir).unlink(missing_ok=True)


# ------------------------------------------------------------------------------ /proc


def _proc_status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return {}
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_alive(pid: int) -> bool:
    """True for a running (not zombie) process. Reaps it first when it is our dead child."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child: another process started it
    status = _proc_status(pid)
    return bool(status) and not status.get("State", "").startswith(("Z", "X"))


def is_our_node(node: NodeState) -> bool:
    """The pid is alive and is the java process running this node's server.properties."""
    return is_alive(node.pid) and node.properties in cmdline(node.pid)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (0 when it is gone)."""
    value = _proc_status(pid).get("VmRSS", "0 kB").split()
    return int(value[0]) * 1024 if value else 0


def processes_using(data_dir: Path) -> list[int]:
    """Pids of live processes whose command line mentions a file under ``data_dir``.

    The final check of `stop`: no java process of ours may remain, whatever the state file says.
    """
    marker = str(data_dir.resolve()) + os.sep
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == os.getpid():
            continue
        if any(arg.startswith(marker) for arg in cmdline(pid)) and is_alive(pid):
            found.append(pid)
    return sorted(found)
