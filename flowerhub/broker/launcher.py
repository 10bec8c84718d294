"""Start, watch and stop a local Apache Kafka (KRaft) from the jars `make kafka` fetched.

One node is a combined broker+controller; ``nodes=3`` starts three of them with a controller
quorum of three, replication factor 3 and ``min.insync.replicas=2``. Every port is a free
loopback port; the state file (``state.py``) lets another process find, check and stop it.

    state = start_cluster(nodes=1)            # blocks until the broker answers
    print(state.bootstrap)
    stop_cluster(Path(state.data_dir))

Fault tests use :func:`kill_node` and :func:`restart_node`.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path

from contract.kafka.admin import wait_for_brokers
from contract.kafka.settings import SecurityProtocol, settings_for
from flowerhub.broker.config import (
    ALLOWED_NODE_COUNTS,
    HOST,
    BrokerConfigError,
    ClusterPlan,
    SecurePlan,
    jvm_options,
    log4j2_properties,
    new_cluster_id,
    parse_properties,
    plan_cluster,
    render_properties,
    server_properties,
    validate_heap,
)
from flowerhub.broker.state import (
    ClusterState,
    NodeState,
    StateFileError,
    TlsState,
    is_alive,
    is_our_node,
    kafka_settings,
    node_state,
    processes_using,
    read_state,
    remove_state,
    rss_bytes,
    write_state,
)
from flowerhub.broker.tls import ensure_tls_files

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HOME = REPO_ROOT / ".cache" / "kafka"
DEFAULT_HEAP = "512m"
PORT_ATTEMPTS = 3

# Popen objects of the nodes this process started: kept so they are reaped (no zombies,
# no "still running" warnings) when this process stops them.
log = logging.getLogger(__name__)
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class BrokerError(RuntimeError):
    """The local broker cannot be started, found or stopped; the message says what to do."""


class JarsMissingError(BrokerError):
    pass


class BrokerStartError(BrokerError):
    pass


class AlreadyRunningError(BrokerError):
    pass


@dataclass(frozen=True)
class NodeStatus:
    node_id: int
    pid: int
    alive: bool
    rss_bytes: int
    bootstrap: str


@dataclass(frozen=True)
class ClusterStatus:
    state: ClusterState
    nodes: tuple[NodeStatus, ...]

    @property
    def running(self) -> bool:
        return all(n.alive for n in self.nodes)

    @property
    def rss_bytes(self) -> int:
        return sum(n.rss_bytes for n in self.nodes)


def kafka_home() -> Path:
    """Where jars and run dirs live: ``$FLOWERHUB_KAFKA_HOME`` or ``<repo>/.cache/kafka``."""
    return Path(os.environ.get("FLOWERHUB_KAFKA_HOME", str(DEFAULT_HOME))).resolve()


def default_data_dir(nodes: int) -> Path:
    return kafka_home() / "run" / ("single" if nodes == 1 else f"cluster{nodes}")


def lib_dir() -> Path:
    return kafka_home() / "lib"


def kafka_version(lib: Path) -> str:
    """The Kafka version of the jars in ``lib`` (from the kafka_2.13-<version>.jar name)."""
    jars = sorted(lib.glob("kafka_2.13-*.jar"))
    if not jars or not shutil.which("java"):
        what = "java is not on PATH" if jars else f"no Kafka jars in {lib}"
        raise JarsMissingError(f"{what}: run `make kafka` (it fetches Java and Kafka's jars)")
    if len(jars) > 1:
        names = ", ".join(j.name for j in jars)
        raise JarsMissingError(f"several Kafka versions in {lib} ({names}): empty it, `make kafka`")
    return jars[0].name.removeprefix("kafka_2.13-").removesuffix(".jar")


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all sockets held until all are chosen)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def ports_free(ports: list[int]) -> bool:
    """True when every one of ``ports`` can be bound on the loopback address right now."""
    with ExitStack() as stack:
        for port in ports:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, port))
            except OSError:
                return False
        return True


def previous_ports(data_dir: Path, nodes: int, secure: bool) -> list[int] | None:
    """The ports a previous run of the cluster in ``data_dir`` used, in plan order (broker,
    controller[, SSL, SASL_SSL] per node), read from the nodes' server.properties; None for
    a fresh dir or one laid out differently (node count, TLS)."""
    ports: list[int] = []
    names = ["PLAINTEXT", "CONTROLLER"] + (["SSL", "SASL_SSL"] if secure else [])
    for node_id in range(1, nodes + 1):
        path = data_dir / f"node-{node_id}" / "server.properties"
        if not path.is_file():
            return None
        try:
            listeners = parse_properties(path.read_text(encoding="utf-8")).get("listeners", "")
        except (OSError, BrokerConfigError):
            return None
        by_name = {}
        for listener in listeners.split(","):
            name, _, address = listener.partition("://")
            by_name[name] = address.rpartition(":")[2]
        if set(by_name) != set(names) or not all(by_name[n].isdigit() for n in names):
            return None
        ports += [int(by_name[n]) for n in names]
    return ports


def _java(lib: Path, main: str, args: list[str], jvm: list[str]) -> list[str]:
    return ["java", *jvm, "-cp", f"{lib}/*", main, *args]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text[-lines:])


def _write_node_files(plan: ClusterPlan, node_id: int) -> NodeState:
    node_dir = plan.node_dir(node_id)
    (node_dir / "data").mkdir(parents=True, exist_ok=True)
    state = node_state(plan, plan.node(node_id), pid=0)
    text = render_properties(server_properties(plan, node_id))
    # with TLS it holds the SASL user's password: readable by this user only
    fd = os.open(state.properties, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(state.properties, 0o600)
    (node_dir / "log4j2.properties").write_text(log4j2_properties(Path(state.log_file)))
    return state


def _format_storage(lib: Path, plan: ClusterPlan, nodes: list[NodeState]) -> None:
    """Format the nodes' log dirs (all at once: each is a short JVM run) unless already done."""
    todo = [
        n for n in nodes if not (Path(n.properties).parent / "data" / "meta.properties").exists()
    ]
    runs = []
    for node in todo:
        log4j = Path(node.properties).parent / "log4j2.properties"
        args = ["format", "-t", plan.cluster_id, "-c", node.properties, "--ignore-formatted"]
        jvm = jvm_options("256m", log4j, short_lived=True)
        cmd = _java(lib, "kafka.tools.StorageTool", args, jvm)
        runs.append((node, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
    failures = []
    for node, proc in runs:
        out, _ = proc.communicate(timeout=120)
        if proc.returncode != 0:
            text = out.decode(errors="replace")
            failures.append(f"node {node.node_id} (exit {proc.returncode}):\n{text}")
    if failures:
        raise BrokerStartError("formatting storage failed for " + "\n".join(failures))


def _spawn(lib: Path, node: NodeState, heap: str) -> NodeState:
    node_dir = Path(node.properties).parent
    jvm = jvm_options(heap, node_dir / "log4j2.properties")
    cmd = _java(lib, "kafka.Kafka", [node.properties], [*jvm, f"-Dkafka.logs.dir={node_dir}"])
    with (node_dir / "stdout.log").open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=node_dir,
            start_new_session=True,  # outlives `flowerhub broker start`; no terminal signals
        )
    _CHILDREN[proc.pid] = proc
    return NodeState(**{**node.__dict__, "pid": proc.pid})


def _startup_failure(state: ClusterState, why: str) -> BrokerStartError:
    parts = [f"Kafka at {state.bootstrap} did not come up: {why}"]
    for node in state.nodes:
        log = Path(node.log_file)
        alive = "running" if is_alive(node.pid) else "exited"
        parts.append(f"--- node {node.node_id} (pid {node.pid}, {alive}), tail of {log}:")
        parts.append(_tail(log, 25))
        stdout = log.parent / "stdout.log"
        if stdout.exists() and stdout.stat().st_size:
            parts.append(f"--- tail of {stdout}:")
            parts.append(_tail(stdout, 15))
    return BrokerStartError("\n".join(parts))


def _check_not_running(data_dir: Path) -> ClusterState | None:
    """The previous state when it is stale (all nodes dead); raise when some node still runs."""
    old = read_state(data_dir)
    if old is None:
        return None
    running = [n for n in old.nodes if is_our_node(n)]
    if running:
        raise AlreadyRunningError(
            f"a cluster already runs from {data_dir} (bootstrap {old.bootstrap}, "
            f"pids {[n.pid for n in running]}): `flowerhub broker stop` first"
        )
    return old


def _formatted_cluster_id(data_dir: Path, nodes: int) -> str | None:
    """The cluster id a previous run formatted into ``data_dir`` (None for a fresh dir)."""
    metas = sorted(data_dir.glob("node-*/data/meta.properties"))
    if not metas:
        return None
    found_nodes = len(metas)
    if found_nodes != nodes:
        raise BrokerError(
            f"{data_dir} holds data of a {found_nodes}-node cluster; pass --nodes {found_nodes} "
            "or another --data-dir"
        )
    ids = {parse_properties(m.read_text()).get("cluster.id") for m in metas}
    if len(ids) != 1 or None in ids:
        raise BrokerError(f"{data_dir}: nodes disagree on the cluster id {ids}; delete the dir")
    return ids.pop()


def start_cluster(
    nodes: int = 1,
    data_dir: Path | None = None,
    *,
    heap: str = DEFAULT_HEAP,
    timeout: float = 90.0,
    tls: bool = False,
) -> ClusterState:
    """Start ``nodes`` (1 or 3) combined broker+controller nodes; return once all answer.

    A data dir that held a stopped cluster is reused (same cluster id, data and ports, so
    clients reconnect by themselves; new ports only when one of them is taken);
    a stale state file (dead pids) is replaced. On failure every started node is stopped and
    the error carries the tail of each node's server log. ``tls`` adds an SSL listener
    (mutual TLS) and a SASL_SSL listener (PLAIN) to every node, with throwaway certificates
    in ``<data_dir>/tls`` (:mod:`flowerhub.broker.tls`); the state file says how to reach them.
    """
    if nodes not in ALLOWED_NODE_COUNTS:
        raise BrokerError(f"--nodes must be one of {ALLOWED_NODE_COUNTS}, not {nodes}")
    validate_heap(heap)
    lib = lib_dir()
    version = kafka_version(lib)
    data_dir = (data_dir or default_data_dir(nodes)).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    _check_not_running(data_dir)
    cluster_id = _formatted_cluster_id(data_dir, nodes) or new_cluster_id()
    secure = _secure_plan(data_dir) if tls else None
    started = time.monotonic()
    # A restart on the same data dir keeps the old ports, so running clients (bridges,
    # workers, archivers) find the brokers where they left them and reconnect by themselves.
    kept = previous_ports(data_dir, nodes, secure is not None)
    if kept is not None and not ports_free(kept):
        log.warning("%s: the previous ports %s are taken: new ports for this run", data_dir, kept)
        kept = None
    for attempt in range(1, PORT_ATTEMPTS + 1):
        # Free ports are released before the JVMs bind them (a second or more later); on a
        # busy machine a client connection may take one meanwhile: then pick new ports.
        if attempt == 1 and kept is not None:
            ports = kept
        else:
            ports = free_ports((2 if secure is None else 4) * nodes)
        plan = plan_cluster(cluster_id, data_dir, ports, secure)
        try:
            state = _start_plan(lib, version, plan, heap, timeout)
        except BrokerStartError as exc:
            if "Address already in use" not in str(exc) or attempt == PORT_ATTEMPTS:
                raise
            continue
        final = replace(state, startup_seconds=time.monotonic() - started)
        write_state(final)
        return final
    raise AssertionError("unreachable: the last attempt returns or raises")


def _secure_plan(data_dir: Path) -> SecurePlan:
    files = ensure_tls_files(data_dir / "tls")
    return SecurePlan(
        keystore=files.server_keystore,
        truststore=files.ca_file,
        sasl_username=files.sasl_username,
        sasl_password=files.sasl_password(),
    )


def _tls_state(plan: ClusterPlan) -> TlsState | None:
    if plan.secure is None or plan.ssl_bootstrap is None or plan.sasl_ssl_bootstrap is None:
        return None
    files = ensure_tls_files(plan.data_dir / "tls")  # made by _secure_plan: read back only
    return TlsState(
        ssl_bootstrap=plan.ssl_bootstrap,
        sasl_ssl_bootstrap=plan.sasl_ssl_bootstrap,
        ca_file=str(files.ca_file),
        client_cert=str(files.client_cert),
        client_key=str(files.client_key),
        sasl_username=files.sasl_username,
        sasl_password_file=str(files.sasl_password_file),
    )


def _start_plan(
    lib: Path, version: str, plan: ClusterPlan, heap: str, timeout: float
) -> ClusterState:
    node_states = [_write_node_files(plan, n.node_id) for n in plan.nodes]
    _format_storage(lib, plan, node_states)
    state = ClusterState(
        data_dir=str(plan.data_dir),
        cluster_id=plan.cluster_id,
        kafka_version=version,
        bootstrap=plan.bootstrap,
        nodes=tuple(_spawn(lib, node, heap) for node in node_states),
        started_at=time.time(),
        startup_seconds=0.0,
        tls=_tls_state(plan),
    )
    write_state(state)
    _await_ready(state, len(plan.nodes), timeout, stop_on_failure=True)
    return state


def _await_ready(
    state: ClusterState, expected_brokers: int, timeout: float, *, stop_on_failure: bool
) -> None:
    def all_alive() -> bool:
        return all(is_alive(n.pid) for n in state.nodes)

    try:
        wait_for_brokers(
            settings_for(state.bootstrap), expected_brokers, timeout, keep_going=all_alive
        )
        if state.tls is not None:  # the TLS listeners answer with the client settings
            for protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL):
                wait_for_brokers(
                    kafka_settings(state, protocol), expected_brokers, 30.0, keep_going=all_alive
                )
    except (TimeoutError, ConnectionError) as exc:
        failure = _startup_failure(state, str(exc))
        if stop_on_failure:
            stop_cluster(Path(state.data_dir))
        raise failure from exc


def cluster_status(data_dir: Path) -> ClusterStatus | None:
    """Per-node liveness and RSS, or None when no cluster was started from ``data_dir``."""
    state = read_state(data_dir.resolve())
    if state is None:
        return None
    nodes = []
    for n in state.nodes:
        ours = is_our_node(n)
        nodes.append(
            NodeStatus(
                node_id=n.node_id,
                pid=n.pid,
                alive=ours,
                rss_bytes=rss_bytes(n.pid) if ours else 0,
                bootstrap=f"{HOST}:{n.broker_port}",
            )
        )
    return ClusterStatus(state=state, nodes=tuple(nodes))


def _terminate(pids: list[int], timeout: float) -> list[int]:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; return the pids still alive after all."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        for pid in pids:
            if is_alive(pid):
                with suppress(ProcessLookupError):
                    os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(is_alive(p) for p in pids):
            time.sleep(0.05)
    for pid in pids:
        child = _CHILDREN.pop(pid, None)
        if child is not None and not is_alive(pid):
            child.wait(timeout=1)
    return [p for p in pids if is_alive(p)]


def stop_cluster(data_dir: Path, timeout: float = 5.0) -> list[int]:
    """Stop every node of the cluster in ``data_dir``; return the pids that were stopped.

    SIGTERM to all nodes, SIGKILL to those still running after ``timeout`` s. A single node
    stops cleanly in about a second. A whole KRaft cluster stopped at once often hangs in
    controlled shutdown once the controller quorum is gone (seen on 3.9 and 4.x), so the
    kill is the normal end there; the next start recovers the logs, as after a crash.
    Raises BrokerError if any process using the data dir survives SIGKILL.
    """
    data_dir = data_dir.resolve()
    try:
        state = read_state(data_dir)
    except StateFileError:
        state = None  # a corrupt state file: the /proc scan below still finds our nodes
    pids = [n.pid for n in state.nodes if is_our_node(n)] if state else []
    # Anything else still using the data dir (e.g. a node restarted by hand) goes too.
    pids = sorted(set(pids) | set(processes_using(data_dir)))
    left = _terminate(pids, timeout)
    if left or processes_using(data_dir):
        raise BrokerError(f"processes still use {data_dir} after SIGKILL: {left}")
    remove_state(data_dir)
    return pids


def kill_node(data_dir: Path, node_id: int, *, graceful: bool = False) -> int:
    """Kill one node (SIGKILL, or SIGTERM with ``graceful``) and wait until it is gone."""
    state = read_state(data_dir.resolve())
    if state is None:
        raise BrokerError(f"no cluster state in {data_dir}")
    node = state.node(node_id)
    if not is_our_node(node):
        raise BrokerError(f"node {node_id} (pid {node.pid}) is not running")
    if graceful:
        left = _terminate([node.pid], timeout=20.0)
    else:
        os.kill(node.pid, signal.SIGKILL)
        left = _terminate([node.pid], timeout=5.0)
    if left:
        raise BrokerError(f"node {node_id} (pid {node.pid}) survived SIGKILL")
    return node.pid


def restart_node(
    data_dir: Path, node_id: int, *, heap: str = DEFAULT_HEAP, timeout: float = 60.0
) -> ClusterState:
    """Start one stopped node again on its old ports; return once the cluster lists it."""
    state = read_state(data_dir.resolve())
    if state is None:
        raise BrokerError(f"no cluster state in {data_dir}")
    node = state.node(node_id)
    if is_our_node(node):
        raise AlreadyRunningError(f"node {node_id} already runs (pid {node.pid})")
    new_state = state.with_node(_spawn(lib_dir(), node, heap))
    write_state(new_state)
    _await_ready(new_state, len(new_state.nodes), timeout, stop_on_failure=False)
    return new_state


@contextmanager
def local_cluster(
    nodes: int = 1, data_dir: Path | None = None, *, heap: str = DEFAULT_HEAP, tls: bool = False
) -> Iterator[ClusterState]:
    """``with local_cluster(3, tmp) as state:`` starts a cluster and always stops it."""
    state = start_cluster(nodes, data_dir, heap=heap, tls=tls)
    try:
        yield state
    finally:
        stop_cluster(Path(state.data_dir))
