"""`flowerhub mqtt start|status|stop|certs`: the project's Mosquitto and its certificates.

Also the MQTT connection flags of the verbs that talk to the broker (`gateway run`): like
``--bootstrap`` for Kafka, ``--mqtt HOST:PORT`` with ``--mqtt-ca`` / ``--mqtt-cert`` /
``--mqtt-key`` (or ``FLOWERHUB_MQTT_*``) point at an existing broker; without them the
running local Mosquitto of `flowerhub mqtt start` is used, with its CA.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

from flowerhub.cli import CliError

MIB = 1024 * 1024


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "mqtt",
        help="start, inspect or stop the local MQTT broker (Mosquitto); issue certificates",
        description="The homes' MQTT broker: Mosquitto over TLS, one certificate per home.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    start = verbs.add_parser("start", help="start Mosquitto (TLS only); wait until it listens")
    start.add_argument("--data-dir", type=Path, help="default: .cache/mqtt/run/default")
    start.add_argument("--host", default="127.0.0.1", help="listen address (default loopback)")
    start.add_argument("--port", type=int, help="default: a free port")
    start.add_argument(
        "--gateway",
        action="append",
        dest="gateways",
        metavar="NAME",
        help="gateway instance names to issue certificates for (default: 1 and 2)",
    )
    start.set_defaults(func=cmd_start)

    for name, func, text in (
        ("status", cmd_status, "show pid, address, memory and certificates"),
        ("stop", cmd_stop, "stop Mosquitto (SIGTERM: it saves its sessions)"),
    ):
        verb = verbs.add_parser(name, help=text)
        verb.add_argument("--data-dir", type=Path, help="default: .cache/mqtt/run/default")
        verb.set_defaults(func=func)

    certs = verbs.add_parser(
        "certs",
        help="issue client certificates: one per home (CN = site id), one per gateway",
        description="Certificates signed by the MQTT CA (made first when missing). A new "
        "gateway certificate also updates the running broker's ACL.",
    )
    certs.add_argument("--site", action="append", default=[], metavar="ID")
    certs.add_argument("--gateway", action="append", default=[], metavar="NAME")
    certs.add_argument("--dir", type=Path, help="certificate directory (default: DATA_DIR/certs)")
    certs.add_argument(
        "--data-dir", type=Path, help="the local broker's (default: .cache/mqtt/run/default)"
    )
    certs.add_argument(
        "--out",
        type=Path,
        help="also copy ca.pem and each new certificate + key here (what a home needs)",
    )
    certs.add_argument(
        "--server-name",
        action="append",
        default=[],
        metavar="HOST",
        help="a name the broker is reached by (its certificate gets it; default: localhost, "
        "127.0.0.1)",
    )
    certs.add_argument("--force", action="store_true", help="issue again even if present")
    certs.set_defaults(func=cmd_certs)


def _data_dir(given: Path | None) -> Path:
    from flowerhub.mqtt.launcher import default_data_dir

    return (given or default_data_dir()).resolve()


def cmd_start(args: argparse.Namespace) -> int:
    from flowerhub.mqtt.launcher import DEFAULT_GATEWAYS, MqttBrokerError, start_mosquitto
    from flowerhub.mqtt.pki import PkiError

    try:
        state = start_mosquitto(
            _data_dir(args.data_dir),
            host=args.host,
            port=args.port,
            gateways=tuple(args.gateways or DEFAULT_GATEWAYS),
        )
    except (MqttBrokerError, PkiError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    pki = state.pki
    print(f"Mosquitto {state.version} on mqtts://{state.address} (TLS, client certificates)")
    print(f"started in {state.startup_seconds:.2f} s, pid {state.pid}")
    print(f"data dir: {state.data_dir}; CA: {pki.ca_file}")
    print(f"gateway identities: {', '.join('gateway@' + g for g in pki.gateways())}")
    print("homes: `flowerhub mqtt certs --site ID --out DIR`")
    print(f"export FLOWERHUB_MQTT={state.address}")
    print(f"export FLOWERHUB_MQTT_CA={pki.ca_file}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from flowerhub.mqtt.launcher import MqttBrokerError, mosquitto_status

    data_dir = _data_dir(args.data_dir)
    try:
        status = mosquitto_status(data_dir)
    except MqttBrokerError as exc:
        raise CliError(str(exc)) from exc
    if status is None:
        print(f"{data_dir}: no local Mosquitto was started; `flowerhub mqtt start`")
        return 1
    st = status.state
    word = "running" if status.alive else "stale state (not running)"
    clients = status.state.pki.clients_dir
    count = len(list(clients.glob("*-key.pem"))) if clients.is_dir() else 0
    print(
        f"{data_dir}: {word}, Mosquitto {st.version}, mqtts://{st.address}, pid {st.pid}, "
        f"RSS {status.rss_bytes // MIB} MiB, {count} client certificate(s), log {st.log_file}"
    )
    return 0 if status.alive else 1


def cmd_stop(args: argparse.Namespace) -> int:
    from flowerhub.mqtt.launcher import MqttBrokerError, stop_mosquitto

    data_dir = _data_dir(args.data_dir)
    try:
        pid = stop_mosquitto(data_dir)
    except MqttBrokerError as exc:
        raise CliError(str(exc)) from exc
    print(f"{data_dir}: " + ("nothing to stop" if pid is None else f"stopped pid {pid}"))
    return 0


def cmd_certs(args: argparse.Namespace) -> int:
    from contract.mqtt.layout import LayoutError, gateway_identity
    from flowerhub.mqtt.launcher import reload_acl
    from flowerhub.mqtt.pki import PkiError, ensure_ca, issue_client

    if not args.site and not args.gateway and not args.server_name:
        raise CliError("name at least one --site ID, --gateway NAME or --server-name HOST")
    data_dir = _data_dir(args.data_dir)
    certs_dir = (args.dir or data_dir / "certs").resolve()
    try:
        hosts = tuple(dict.fromkeys(("localhost", "127.0.0.1", *args.server_name)))
        pki = ensure_ca(certs_dir, hosts)
        identities = [*args.site, *(gateway_identity(g) for g in args.gateway)]
        issued = [issue_client(pki, i, force=args.force) for i in identities]
    except (LayoutError, PkiError) as exc:
        raise CliError(str(exc)) from exc
    for files in issued:
        print(f"{files.identity}: {files.cert} {files.key}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.copy2(pki.ca_file, args.out / "ca.pem")
        for files in issued:
            shutil.copy2(files.cert, args.out / files.cert.name)
            shutil.copy2(files.key, args.out / files.key.name)
            os.chmod(args.out / files.key.name, 0o600)
        print(f"copied ca.pem and {len(issued)} certificate(s) with keys to {args.out}")
    if args.gateway and args.dir is None and reload_acl(data_dir) is not None:
        print("the running broker's ACL now lists the new gateway(s)")
    return 0


# ------------------------------------------------------------------ connection flags


def add_mqtt_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("MQTT connection (default: the local `mqtt start` broker)")
    group.add_argument("--mqtt", metavar="HOST:PORT", help="env FLOWERHUB_MQTT")
    group.add_argument("--mqtt-ca", type=Path, metavar="PEM", help="env FLOWERHUB_MQTT_CA")
    group.add_argument("--mqtt-cert", type=Path, metavar="PEM", help="env FLOWERHUB_MQTT_CERT")
    group.add_argument("--mqtt-key", type=Path, metavar="PEM", help="env FLOWERHUB_MQTT_KEY")


def mqtt_settings(args: argparse.Namespace, *, identity: str) -> Any:
    """MqttSettings from the flags, then ``FLOWERHUB_MQTT*``, then the local broker (whose
    certificate directory also gives ``identity``'s certificate when none is named)."""
    from pydantic import ValidationError

    from contract.mqtt.settings import MqttSettings
    from flowerhub.mqtt.launcher import find_running

    address = args.mqtt or os.environ.get("FLOWERHUB_MQTT")
    ca = args.mqtt_ca or _env_path("FLOWERHUB_MQTT_CA")
    cert = args.mqtt_cert or _env_path("FLOWERHUB_MQTT_CERT")
    key = args.mqtt_key or _env_path("FLOWERHUB_MQTT_KEY")
    local = find_running()
    if address is None:
        if local is None:
            raise CliError("no MQTT broker: pass --mqtt HOST:PORT or `flowerhub mqtt start`")
        address = local.address
    if local is not None and (ca is None or cert is None):
        files = local.pki.client(identity)
        ca = ca or local.pki.ca_file
        if cert is None and files.cert.is_file():
            cert, key = files.cert, key or files.key
    if ca is None:
        raise CliError("--mqtt-ca (or FLOWERHUB_MQTT_CA): the CA that signed the broker")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise CliError(f"--mqtt {address!r}: expected HOST:PORT")
    for what, path in (("CA", ca), ("certificate", cert), ("key", key)):
        if path is not None and not Path(path).is_file():
            raise CliError(f"MQTT {what} file {path} does not exist")
    try:
        return MqttSettings(host=host, port=int(port), ca_file=ca, cert_file=cert, key_file=key)
    except ValidationError as exc:
        raise CliError(f"MQTT settings: {exc}") from exc


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None
