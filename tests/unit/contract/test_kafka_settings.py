"""The connection module without a broker: settings from the environment, files and flags,
their checks, the secret kept out of every text, the client options, the failure reasons."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import ssl
from pathlib import Path
from typing import Any

import pytest

from contract.kafka import clients
from contract.kafka.cliargs import (
    KafkaOptions,
    add_kafka_arguments,
    options_from_args,
    options_of,
    resolve,
    settings_from_args,
)
from contract.kafka.settings import (
    KafkaSettings,
    KafkaSettingsError,
    SaslMechanism,
    SecurityProtocol,
    settings_for,
)
from flowerhub.broker.launcher import free_ports
from flowerhub.broker.tls import ensure_tls_files

SECRET = "pa55-w0rd-that-must-never-show"  # noqa: S105  # a test value


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FLOWERHUB_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return ensure_tls_files(tmp_path_factory.mktemp("tls"))


def parser() -> argparse.ArgumentParser:
    return add_kafka_arguments(argparse.ArgumentParser(prog="verb"))


def sasl_env(monkeypatch: pytest.MonkeyPatch, ca: Path) -> None:
    monkeypatch.setenv("FLOWERHUB_BOOTSTRAP_SERVERS", "b1:9093,b2:9093")
    monkeypatch.setenv("FLOWERHUB_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FLOWERHUB_SSL_CAFILE", str(ca))
    monkeypatch.setenv("FLOWERHUB_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("FLOWERHUB_SASL_USERNAME", "fh")
    monkeypatch.setenv("FLOWERHUB_SASL_PASSWORD", SECRET)


def test_one_naming_scheme_from_the_environment(monkeypatch: pytest.MonkeyPatch, tls: Any) -> None:
    sasl_env(monkeypatch, tls.ca_file)
    monkeypatch.setenv("FLOWERHUB_CLIENT_ID", "fh-archiver")
    s = KafkaSettings()
    assert s.bootstrap_server_list == ["b1:9093", "b2:9093"]
    assert s.security_protocol is SecurityProtocol.SASL_SSL
    assert s.sasl_mechanism is SaslMechanism.SCRAM_SHA_512
    assert s.client_id == "fh-archiver"
    options = clients.consumer_options(s, group_id="g")
    assert options["sasl_plain_password"] == SECRET
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["client_id"] == "fh-archiver"
    assert (options["enable_auto_commit"], options["auto_offset_reset"]) == (False, "earliest")


def test_kafka_bootstrap_servers_is_the_fallback_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:1")
    assert KafkaSettings().bootstrap_servers == "k:1"
    monkeypatch.setenv("FLOWERHUB_BOOTSTRAP_SERVERS", "f:1")
    assert KafkaSettings().bootstrap_servers == "f:1"
    assert KafkaSettings().describe() == "PLAINTEXT://f:1"


def test_password_from_a_file(tmp_path: Path, tls: Any) -> None:
    file = tmp_path / "pw"
    file.write_text(SECRET + "\n")
    s = KafkaSettings.of(
        bootstrap_servers="b:1",
        security_protocol="SASL_SSL",
        ssl_cafile=tls.ca_file,
        sasl_mechanism="PLAIN",
        sasl_username="fh",
        sasl_password_file=file,
    )
    assert s.sasl_password is not None
    assert s.sasl_password.get_secret_value() == SECRET
    assert s.environment().get("FLOWERHUB_SASL_PASSWORD_FILE") == str(file)
    assert "FLOWERHUB_SASL_PASSWORD" not in s.environment()  # the file is enough


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs sasl_mechanism (--sasl-mechanism"),
        ({"sasl_username": "u"}, "SASL credentials given but security_protocol is PLAINTEXT"),
        ({"security_protocol": "SSL", "ssl_cafile": "/nope/ca.pem"}, "no such file"),
        ({"security_protocol": "SSL", "ssl_keyfile": "/k"}, "go together"),
        ({"bootstrap_servers": "no-port"}, "not host:port"),
        ({"bootstrap_servers": " , "}, "is empty"),
        ({"client_id": "bad id"}, "client_id (--client-id / FLOWERHUB_CLIENT_ID)"),
        ({"security_protocol": "TELNET"}, "security_protocol (--security-protocol"),
        ({"sasl_password_file": "/nope/pw"}, "cannot read /nope/pw"),
    ],
)
def test_bad_settings_name_the_flag_and_the_variable(fields: dict[str, Any], says: str) -> None:
    with pytest.raises(KafkaSettingsError, match=r"^Kafka connection settings: ") as caught:
        KafkaSettings.of(**fields)
    assert says in str(caught.value)


def test_password_given_twice_or_empty(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(KafkaSettingsError, match="is empty"):
        KafkaSettings.of(sasl_password_file=empty)
    full = tmp_path / "pw"
    full.write_text(SECRET)
    monkeypatch.setenv("FLOWERHUB_SASL_PASSWORD", SECRET)
    with pytest.raises(KafkaSettingsError, match="given twice") as caught:
        KafkaSettings.of(sasl_password_file=full)
    assert SECRET not in str(caught.value)


def test_the_secret_shows_nowhere(
    monkeypatch: pytest.MonkeyPatch, tls: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sasl_env(monkeypatch, tls.ca_file)
    s = KafkaSettings()
    texts = [repr(s), str(s), s.model_dump_json(), str(s.model_dump()), s.describe()]
    texts += [" ".join(s.arguments()), repr(options_of(s)), str(s.connection_fields())]
    monkeypatch.setenv("FLOWERHUB_SASL_MECHANISM", "NOPE")  # a failing validation
    with pytest.raises(KafkaSettingsError) as caught:
        KafkaSettings.of()
    texts.append(str(caught.value))
    help_text = parser().format_help()
    texts.append(help_text)
    assert "--sasl-password " not in help_text
    assert "--sasl-password\n" not in help_text
    assert "--sasl-password-file" in help_text
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("flowerhub.test").info("connecting to %s", s.describe())
    texts.append(caplog.text)
    for text in texts:
        assert SECRET not in text


def test_help_shows_no_value_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWERHUB_BOOTSTRAP_SERVERS", "secret-host:9093")
    monkeypatch.setenv("FLOWERHUB_SASL_USERNAME", "secret-user")
    text = parser().format_help()
    assert "secret-host" not in text
    assert "secret-user" not in text


def test_flags_beat_the_config_file_beat_the_environment_beat_the_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = parser()
    fallback = KafkaOptions(bootstrap_servers="local:1", client_id="from-local")
    assert resolve(fallback=lambda: fallback).bootstrap_servers == "local:1"
    assert resolve(fallback=lambda: None).bootstrap_servers == "localhost:9092"
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env:1")
    monkeypatch.setenv("FLOWERHUB_CLIENT_ID", "from-env")
    s = resolve(fallback=lambda: fallback)  # the environment names a broker: no fallback
    assert (s.bootstrap_servers, s.client_id) == ("env:1", "from-env")
    base = KafkaOptions(bootstrap_servers="file:1")
    args = p.parse_args([])
    assert settings_from_args(args, base=base).bootstrap_servers == "file:1"
    args = p.parse_args(["--bootstrap", "flag:1", "--client-id", "from-flag"])
    s = settings_from_args(args, base=base, fallback=lambda: fallback)
    assert (s.bootstrap_servers, s.client_id) == ("flag:1", "from-flag")


def test_arguments_and_environment_give_a_child_the_same_settings(
    monkeypatch: pytest.MonkeyPatch, tls: Any
) -> None:
    sasl_env(monkeypatch, tls.ca_file)
    s = KafkaSettings()
    argv = s.arguments()
    assert SECRET not in argv
    child_env = s.environment()
    for name in list(os.environ):
        if name.startswith("FLOWERHUB_"):
            monkeypatch.delenv(name)
    for name, value in child_env.items():
        monkeypatch.setenv(name, value)
    again = settings_from_args(parser().parse_args(argv))
    assert again == s
    assert options_from_args(parser().parse_args(argv)) == options_of(s)


def test_settings_for_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWERHUB_SECURITY_PROTOCOL", "SSL")
    s = settings_for("b:1")
    assert s.security_protocol is SecurityProtocol.PLAINTEXT
    assert clients.producer_options(s) == {
        "bootstrap_servers": ["b:1"],
        "security_protocol": "PLAINTEXT",
        "client_id": "flowerhub",
        "acks": "all",
        "enable_idempotence": True,
    }
    assert clients.producer_options(s, acks=1, enable_idempotence=False)["acks"] == 1


def test_a_bad_ca_file_is_refused_before_any_connection(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    s = settings_for("b:1", security_protocol="SSL", ssl_cafile=bad)
    with pytest.raises(KafkaSettingsError, match="cannot load"):
        s.ssl_context()


def test_an_unreachable_broker_is_reported_with_the_reason() -> None:
    (port,) = free_ports(1)
    s = settings_for(f"127.0.0.1:{port}")

    async def go() -> None:
        await clients.start(clients.producer(s, request_timeout_ms=2000), s)

    with pytest.raises(clients.KafkaUnreachableError) as caught:
        asyncio.run(go())
    assert str(caught.value) == (
        f"cannot connect to Kafka at PLAINTEXT://127.0.0.1:{port}: "
        f"nothing listens on 127.0.0.1:{port} (connection refused)"
    )


def test_aiokafka_debug_log_never_shows_a_sasl_login(caplog: pytest.LogCaptureFixture) -> None:
    class SaslAuthenticateRequest_v1:  # noqa: N801  # named like aiokafka's request struct
        def __repr__(self) -> str:
            return f"SaslAuthenticateRequest_v1(sasl_auth_bytes=b'fh\\x00fh\\x00{SECRET}')"

    with caplog.at_level(logging.DEBUG, logger="aiokafka.conn"):
        logging.getLogger("aiokafka.conn").debug(
            "Request to %s:%d %d: %s", "b", 9093, 3, SaslAuthenticateRequest_v1()
        )
    assert "SaslAuthenticateRequest_v1(<redacted>)" in caplog.text
    assert SECRET not in caplog.text
