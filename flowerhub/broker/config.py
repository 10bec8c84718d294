"""Pure planning of a local KRaft cluster: node layout, server.properties, JVM options.

No processes, no sockets, no Kafka imports: everything here is data in, text out, so it is
tested table-driven and with hypothesis (tests/unit/test_broker_config.py).
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
ALLOWED_NODE_COUNTS = (1, 3)
# Kafka prints a cluster id as the URL-safe base64 of 16 random bytes, without padding.
_CLUSTER_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{21}$")
_HEAP_RE = re.compile(r"^[1-9][0-9]*[mMgG]$")


class BrokerConfigError(ValueError):
    """A cluster plan that cannot work (bad node count, port, heap size or cluster id)."""


@dataclass(frozen=True)
class SecurePlan:
    """The TLS listeners of every node (``broker start --tls``): PEM key and trust stores
    and the SASL PLAIN user. ``SSL`` asks clients for a certificate of the CA (mutual TLS);
    ``SASL_SSL`` asks for the user's password over TLS."""

    keystore: Path  # PEM: private key + certificate chain
    truststore: Path  # PEM: the CA certificate
    sasl_username: str
    sasl_password: str = field(repr=False)


@dataclass(frozen=True)
class NodePlan:
    """One combined broker+controller node: its id and its loopback ports (two, and two
    more for the TLS listeners when the cluster has them)."""

    node_id: int
    broker_port: int
    controller_port: int
    ssl_port: int | None = None
    sasl_ssl_port: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.broker_port}"

    @property
    def ports(self) -> tuple[int, ...]:
        extra = (self.ssl_port, self.sasl_ssl_port)
        return (self.broker_port, self.controller_port, *(p for p in extra if p is not None))


@dataclass(frozen=True)
class ClusterPlan:
    """Everything needed to write the nodes' configs: ids, ports, where data goes."""

    cluster_id: str
    data_dir: Path
    nodes: tuple[NodePlan, ...]
    secure: SecurePlan | None = None

    def __post_init__(self) -> None:
        validate_cluster_id(self.cluster_id)
        if len(self.nodes) not in ALLOWED_NODE_COUNTS:
            raise BrokerConfigError(
                f"a cluster has {' or '.join(map(str, ALLOWED_NODE_COUNTS))} nodes, "
                f"not {len(self.nodes)}"
            )
        ids = [n.node_id for n in self.nodes]
        if len(set(ids)) != len(ids) or min(ids) < 1:
            raise BrokerConfigError(f"node ids must be distinct and >= 1, got {ids}")
        if any((n.ssl_port is None) != (self.secure is None) for n in self.nodes) or any(
            (n.ssl_port is None) != (n.sasl_ssl_port is None) for n in self.nodes
        ):
            raise BrokerConfigError("TLS listener ports go with a TLS plan, on every node")
        ports = [p for n in self.nodes for p in n.ports]
        for port in ports:
            validate_port(port)
        if len(set(ports)) != len(ports):
            count = "two" if self.secure is None else "four"
            raise BrokerConfigError(f"every node needs its own {count} ports, got {ports}")

    @property
    def replication_factor(self) -> int:
        return len(self.nodes)

    @property
    def min_insync_replicas(self) -> int:
        # 3 nodes: acks=all survives one node down. 1 node: nothing else is possible.
        return 2 if len(self.nodes) >= 3 else 1

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    @property
    def ssl_bootstrap(self) -> str | None:
        """The mutual-TLS listeners (None without TLS)."""
        if self.secure is None:
            return None
        return ",".join(f"{HOST}:{n.ssl_port}" for n in self.nodes)

    @property
    def sasl_ssl_bootstrap(self) -> str | None:
        """The SASL-over-TLS listeners (None without TLS)."""
        if self.secure is None:
            return None
        return ",".join(f"{HOST}:{n.sasl_ssl_port}" for n in self.nodes)

    @property
    def quorum_voters(self) -> str:
        return ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in self.nodes)

    def node(self, node_id: int) -> NodePlan:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise BrokerConfigError(
            f"no node {node_id} in this cluster (nodes: {[n.node_id for n in self.nodes]})"
        )

    def node_dir(self, node_id: int) -> Path:
        return self.data_dir / f"node-{self.node(node_id).node_id}"


def validate_port(port: int) -> int:
    if not 1024 <= port <= 65535:
        raise BrokerConfigError(f"port {port} is outside 1024..65535")
    return port


def validate_cluster_id(cluster_id: str) -> str:
    if not _CLUSTER_ID_RE.match(cluster_id):
        raise BrokerConfigError(
            f"cluster id {cluster_id!r} is not 22 URL-safe base64 characters "
            "(not starting with '-')"
        )
    return cluster_id


def validate_heap(heap: str) -> str:
    """A JVM heap size like ``512m`` or ``1g``."""
    if not _HEAP_RE.match(heap):
        raise BrokerConfigError(f"heap size {heap!r} is not like '512m' or '1g'")
    return heap


def new_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A fresh Kafka cluster id (as `kafka-storage random-uuid` prints it).

    Ids starting with '-' are drawn again, as Kafka does, since the id is a CLI argument.
    """
    for _ in range(64):
        raw = random_bytes()
        if len(raw) != 16:
            raise BrokerConfigError(f"a cluster id needs 16 random bytes, got {len(raw)}")
        text = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
        if not text.startswith("-"):
            return text
    raise BrokerConfigError("could not draw a cluster id not starting with '-'")


def plan_cluster(
    cluster_id: str, data_dir: Path, ports: list[int], secure: SecurePlan | None = None
) -> ClusterPlan:
    """Lay out the nodes, ids 1.., each taking a broker then a controller port, and with
    ``secure`` an SSL and a SASL_SSL port after them (2 or 4 ports per node)."""
    per_node = 2 if secure is None else 4
    if len(ports) % per_node:
        if secure is None:
            raise BrokerConfigError(f"two ports per node, got an odd count ({len(ports)})")
        raise BrokerConfigError(f"four ports per node with TLS, got {len(ports)}")
    nodes = tuple(
        NodePlan(
            node_id=i + 1,
            broker_port=ports[per_node * i],
            controller_port=ports[per_node * i + 1],
            ssl_port=None if secure is None else ports[per_node * i + 2],
            sasl_ssl_port=None if secure is None else ports[per_node * i + 3],
        )
        for i in range(len(ports) // per_node)
    )
    return ClusterPlan(cluster_id=cluster_id, data_dir=data_dir, nodes=nodes, secure=secure)


def _listener_properties(plan: ClusterPlan, node: NodePlan) -> dict[str, str]:
    """Listeners: PLAINTEXT (clients, brokers, readiness checks) and CONTROLLER, plus SSL
    (mutual TLS) and SASL_SSL (PLAIN over TLS) with a TLS plan."""
    listeners = [f"PLAINTEXT://{HOST}:{node.broker_port}"]
    protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    secure = plan.secure
    if secure is not None:
        listeners += [f"SSL://{HOST}:{node.ssl_port}", f"SASL_SSL://{HOST}:{node.sasl_ssl_port}"]
        protocols += ["SSL:SSL", "SASL_SSL:SASL_SSL"]
    props = {
        "listeners": ",".join([*listeners, f"CONTROLLER://{HOST}:{node.controller_port}"]),
        "advertised.listeners": ",".join(listeners),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": ",".join(protocols),
    }
    if secure is not None:
        for key in ("SSL", "SASL_SSL"):
            name = f"listener.name.{key.lower()}."
            props[name + "ssl.keystore.type"] = "PEM"
            props[name + "ssl.keystore.location"] = str(secure.keystore)
            props[name + "ssl.truststore.type"] = "PEM"
            props[name + "ssl.truststore.location"] = str(secure.truststore)
        props["listener.name.ssl.ssl.client.auth"] = "required"
        props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] = "PLAIN"
        props["listener.name.sasl_ssl.plain.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{secure.sasl_username}="{secure.sasl_password}";'
        )
    return props


def server_properties(plan: ClusterPlan, node_id: int) -> dict[str, str]:
    """The server.properties of one combined broker+controller node (KRaft; PLAINTEXT, and
    the TLS listeners with a TLS plan)."""
    node = plan.node(node_id)
    rf = str(plan.replication_factor)
    isr = str(plan.min_insync_replicas)
    return {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": plan.quorum_voters,
        **_listener_properties(plan, node),
        "log.dirs": str(plan.node_dir(node_id) / "data"),
        # The project pre-creates every topic; a typo must fail, not invent a topic.
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
        "default.replication.factor": rf,
        "min.insync.replicas": isr,
        "offsets.topic.replication.factor": rf,
        # 50 offsets partitions (the default) cost seconds of leader elections per start on a
        # small machine; 10 is plenty for a local fleet.
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": isr,
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": isr,
        "unclean.leader.election.enable": "false",
        # A dead node is fenced (and its partitions move) after 3 s instead of 9 s: fault
        # tests and the demo's broker-loss scenario see failover at local-network speed.
        "broker.heartbeat.interval.ms": "500",
        "broker.session.timeout.ms": "3000",
        # Tests and the demo start consumer groups right away: no 3 s wait for more members.
        "group.initial.rebalance.delay.ms": "0",
        # The streams workers' groups fail over on a 3 s session timeout (a killed leader's
        # successor acts within 5 s); Kafka's default floor is 6 s.
        "group.min.session.timeout.ms": "1000",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        "log.retention.hours": "168",
        "log.segment.bytes": str(64 * 1024 * 1024),
    }


def render_properties(props: Mapping[str, str]) -> str:
    """Java properties text; values here never hold newlines or '\\' (checked)."""
    lines = []
    for key, value in props.items():
        if any(c in key + value for c in "\n\r\\") or not key or "=" in key:
            raise BrokerConfigError(f"property {key!r}={value!r} cannot be written plainly")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def parse_properties(text: str) -> dict[str, str]:
    """Read back what :func:`render_properties` writes (plus comments and blank lines)."""
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise BrokerConfigError(f"line {number} is not key=value: {raw!r}")
        out[key.strip()] = value.strip()
    return out


def log4j2_properties(log_file: Path) -> str:
    """A log4j2 config sending every logger at INFO to one rolling file (``server.log``)."""
    return "\n".join(
        [
            "status = warn",
            "appender.file.type = RollingFile",
            "appender.file.name = FILE",
            f"appender.file.fileName = {log_file}",
            f"appender.file.filePattern = {log_file}.%i",
            "appender.file.layout.type = PatternLayout",
            "appender.file.layout.pattern = [%d] %p %m (%c)%n",
            "appender.file.policies.type = Policies",
            "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
            "appender.file.policies.size.size = 20MB",
            "appender.file.strategy.type = DefaultRolloverStrategy",
            "appender.file.strategy.max = 2",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.file.ref = FILE",
            # The state change and request loggers are very chatty at INFO.
            "logger.state.name = state.change.logger",
            "logger.state.level = WARN",
            "logger.request.name = kafka.request.logger",
            "logger.request.level = WARN",
            "",
        ]
    )


def jvm_options(heap: str, log4j_config: Path, *, short_lived: bool = False) -> list[str]:
    """JVM flags for one node: a small fixed-ceiling heap so 3 nodes fit beside the tests.

    ``short_lived`` (the storage format tool): the C1 compiler alone and a serial GC, which
    start a JVM that runs for a second fastest.
    """
    validate_heap(heap)
    if short_lived:
        tuning = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
    else:
        tuning = ["-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError"]
    return [
        f"-Xmx{heap}",
        "-Xms64m",
        *tuning,
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j_config}",
        f"-Dlog4j.configurationFile={log4j_config}",
    ]
