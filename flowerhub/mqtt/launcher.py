"""Start, watch and stop the project's Mosquitto (Debian's ``mosquitto``, `make mqtt`).

Like :mod:`flowerhub.broker.launcher` for Kafka: a data dir holds the generated config, the
ACL, the certificate directory (``certs/``, :mod:`flowerhub.mqtt.pki`), the persistence db,
the log and a state file (``mosquitto.json``) that lets `status` and `stop` in another
process find it. Loopback only by default; one TLS listener on a free port.

    state = start_mosquitto()          # blocks until the listener accepts connections
    stop_mosquitto(Path(state.data_dir))
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from flowerhub.broker.launcher import free_ports
from flowerhub.broker.state import cmdline, is_alive, rss_bytes
from flowerhub.mqtt.config import MosquittoPlan, render_acl, render_conf
from flowerhub.mqtt.pki import Pki, ensure_ca, issue_client

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HOME = REPO_ROOT / ".cache" / "mqtt"
STATE_FILE = "mosquitto.json"
STATE_VERSION = 1
HOST = "127.0.0.1"
DEFAULT_GATEWAYS = ("1", "2")
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class MqttBrokerError(RuntimeError):
    """The local Mosquitto cannot be started, found or stopped; the message says what to do."""


@dataclass(frozen=True)
class MosquittoState:
    data_dir: str
    pid: int
    host: str
    port: int
    version: str
    certs_dir: str
    conf_file: str
    log_file: str
    started_at: float
    startup_seconds: float

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pki(self) -> Pki:
        return Pki(Path(self.certs_dir))


def mqtt_home() -> Path:
    """``$FLOWERHUB_MQTT_HOME`` or ``<repo>/.cache/mqtt``."""
    return Path(os.environ.get("FLOWERHUB_MQTT_HOME", str(DEFAULT_HOME))).resolve()


def default_data_dir() -> Path:
    return mqtt_home() / "run" / "default"


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).is_file()),
        None,
    )
    if found is None:
        raise MqttBrokerError("mosquitto is not installed: run `make mqtt` (Debian's package)")
    return found


def mosquitto_version(binary: str) -> str:
    out = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=10, check=False)
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith("mosquitto version"):
            return line.split()[2]
    return "unknown"


def read_state(data_dir: Path) -> MosquittoState | None:
    path = data_dir / STATE_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise MqttBrokerError(f"{path}: unreadable state ({exc})") from exc
    if not isinstance(raw, dict) or raw.pop("state_version", None) != STATE_VERSION:
        raise MqttBrokerError(f"{path}: unknown state version; delete it")
    try:
        return MosquittoState(**raw)
    except TypeError as exc:
        raise MqttBrokerError(f"{path}: malformed state ({exc})") from exc


def _write_state(state: MosquittoState) -> None:
    path = Path(state.data_dir) / STATE_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"state_version": STATE_VERSION, **asdict(state)}, indent=2) + "\n")
    tmp.replace(path)


def is_ours(state: MosquittoState) -> bool:
    """The pid runs Mosquitto with this data dir's config (pid reuse is real)."""
    return is_alive(state.pid) and state.conf_file in cmdline(state.pid)


def write_acl(data_dir: Path, pki: Pki) -> Path:
    acl = data_dir / "acl"
    acl.write_text(render_acl(pki.gateways()))
    return acl


def _wait_listening(state: MosquittoState, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection((state.host, state.port), 0.5):
            return
        time.sleep(0.05)
    log = Path(state.log_file)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else ""
    out = Path(state.data_dir) / "stdout.log"
    tail += "\n" + (out.read_text(errors="replace")[-2000:] if out.exists() else "")
    _terminate(proc.pid)
    why = f"exited with {proc.returncode}" if proc.returncode is not None else "not listening"
    raise MqttBrokerError(f"mosquitto on {state.host}:{state.port} {why}:\n{tail.strip()}")


def start_mosquitto(
    data_dir: Path | None = None,
    *,
    host: str = HOST,
    port: int | None = None,
    gateways: tuple[str, ...] = DEFAULT_GATEWAYS,
    timeout: float = 15.0,
) -> MosquittoState:
    """Start Mosquitto from ``data_dir`` (default ``.cache/mqtt/run/default``) on ``host``
    (loopback by default) and a free port; return once it accepts connections. The CA, the
    server certificate and a certificate per gateway name in ``gateways`` are made in
    ``<data_dir>/certs`` unless there already."""
    binary = mosquitto_binary()
    data_dir = (data_dir or default_data_dir()).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    old = read_state(data_dir)
    if old is not None and is_ours(old):
        raise MqttBrokerError(
            f"mosquitto already runs from {data_dir} (pid {old.pid}, {old.address}): "
            "`flowerhub mqtt stop` first"
        )
    hosts = tuple(dict.fromkeys(("localhost", "127.0.0.1", host)))
    pki = ensure_ca(data_dir / "certs", hosts)
    for name in gateways:
        issue_client(pki, f"gateway@{name}")
    plan = MosquittoPlan(
        data_dir=data_dir,
        host=host,
        port=port or free_ports(1)[0],
        cafile=pki.ca_file,
        certfile=pki.server_cert,
        keyfile=pki.server_key,
        user=getpass.getuser(),
    )
    plan.db_dir.mkdir(exist_ok=True)
    plan.conf_file.write_text(render_conf(plan))
    write_acl(data_dir, pki)
    started = time.monotonic()
    with (data_dir / "stdout.log").open("ab") as out:
        proc = subprocess.Popen(
            [binary, "-c", str(plan.conf_file)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            start_new_session=True,  # outlives `flowerhub mqtt start`; no terminal signals
        )
    _CHILDREN[proc.pid] = proc
    state = MosquittoState(
        data_dir=str(data_dir),
        pid=proc.pid,
        host=host,
        port=plan.port,
        version=mosquitto_version(binary),
        certs_dir=str(pki.dir),
        conf_file=str(plan.conf_file),
        log_file=str(plan.log_file),
        started_at=time.time(),
        startup_seconds=0.0,
    )
    _wait_listening(state, proc, timeout)
    state = MosquittoState(**{**asdict(state), "startup_seconds": time.monotonic() - started})
    _write_state(state)
    return state


def restart_mosquitto(data_dir: Path, *, timeout: float = 15.0) -> MosquittoState:
    """Stop and start again on the same port (fault tests: clients reconnect by themselves)."""
    state = read_state(data_dir.resolve())
    if state is None:
        raise MqttBrokerError(f"no mosquitto state in {data_dir}")
    stop_mosquitto(Path(state.data_dir))
    pki = state.pki
    return start_mosquitto(
        Path(state.data_dir),
        host=state.host,
        port=state.port,
        gateways=tuple(pki.gateways()),
        timeout=timeout,
    )


def reload_acl(data_dir: Path) -> MosquittoState | None:
    """Write the ACL again (new gateway certificates) and have a running Mosquitto re-read it
    (SIGHUP). Returns the running state, or None when none runs from ``data_dir``."""
    state = read_state(data_dir.resolve())
    write_acl(data_dir.resolve(), Pki(data_dir.resolve() / "certs"))
    if state is None or not is_ours(state):
        return None
    os.kill(state.pid, signal.SIGHUP)
    return state


def _terminate(pid: int, timeout: float = 10.0) -> bool:
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not is_alive(pid):
            break
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and is_alive(pid):
            time.sleep(0.02)
    child = _CHILDREN.pop(pid, None)
    if child is not None and not is_alive(pid):
        child.wait(timeout=1)
    return not is_alive(pid)


def stop_mosquitto(data_dir: Path) -> int | None:
    """Stop the Mosquitto of ``data_dir`` (SIGTERM: it saves its db; SIGKILL after 10 s).
    Returns its pid, or None when none ran."""
    data_dir = data_dir.resolve()
    state = read_state(data_dir)
    if state is None:
        return None
    pid = state.pid if is_ours(state) else None
    if pid is not None and not _terminate(pid):
        raise MqttBrokerError(f"mosquitto pid {pid} survived SIGKILL")
    (data_dir / STATE_FILE).unlink(missing_ok=True)
    return pid


def kill_mosquitto(data_dir: Path) -> int:
    """SIGKILL (a crash: no db save); the state file stays for restart_mosquitto."""
    state = read_state(data_dir.resolve())
    if state is None or not is_ours(state):
        raise MqttBrokerError(f"no running mosquitto in {data_dir}")
    os.kill(state.pid, signal.SIGKILL)
    _terminate(state.pid, timeout=5.0)
    return state.pid


@dataclass(frozen=True)
class MosquittoStatus:
    state: MosquittoState
    alive: bool
    rss_bytes: int


def mosquitto_status(data_dir: Path) -> MosquittoStatus | None:
    state = read_state(data_dir.resolve())
    if state is None:
        return None
    alive = is_ours(state)
    return MosquittoStatus(state, alive, rss_bytes(state.pid) if alive else 0)


def find_running() -> MosquittoState | None:
    """The running Mosquitto of the default data dir, if any (what the verbs use by default)."""
    try:
        state = read_state(default_data_dir())
    except MqttBrokerError:
        return None
    return state if state is not None and is_ours(state) else None


@contextmanager
def local_mosquitto(data_dir: Path, **kwargs: object) -> Iterator[MosquittoState]:
    """``with local_mosquitto(tmp) as state:`` starts Mosquitto and always stops it."""
    state = start_mosquitto(data_dir, **kwargs)  # type: ignore[arg-type]  # keyword pass-through
    try:
        yield state
    finally:
        stop_mosquitto(Path(state.data_dir))
