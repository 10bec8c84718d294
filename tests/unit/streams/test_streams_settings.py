"""Streams settings from the environment."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from streams.settings import SaslMechanism, SecurityProtocol, StreamsSettings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FLOWERHUB_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = StreamsSettings()
    assert s.bootstrap_server_list == ["localhost:9092"]
    assert s.security_protocol is SecurityProtocol.PLAINTEXT
    assert s.auth_options() == {
        "bootstrap_servers": ["localhost:9092"],
        "security_protocol": "PLAINTEXT",
        "client_id": "flowerhub",
    }
    assert s.filter.to_config().threshold_kw == 0.5
    assert s.filter.hold_s == 1.0
    assert s.workers.session_timeout_s == 3.0
    assert s.aggregation.idle_s == 2.0
    assert s.aggregation.windows_s == (1, 10)


def test_environment_with_sasl_ssl_and_nested_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWERHUB_BOOTSTRAP_SERVERS", "b1:9093, b2:9093")
    monkeypatch.setenv("FLOWERHUB_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FLOWERHUB_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("FLOWERHUB_SASL_USERNAME", "fh")
    monkeypatch.setenv("FLOWERHUB_SASL_PASSWORD", "s3cret-value")
    monkeypatch.setenv("FLOWERHUB_TOPIC_PREFIX", "prod.")
    monkeypatch.setenv("FLOWERHUB_FILTER__THRESHOLD_KW", "0.8")
    monkeypatch.setenv("FLOWERHUB_ALLOCATOR__CLAMP_WINDOW_S", "30")
    monkeypatch.setenv("FLOWERHUB_ALLOCATOR__ORDER_MARGIN", "0.03")
    monkeypatch.setenv("FLOWERHUB_COMPLIANCE__STALE_AFTER_S", "4")
    s = StreamsSettings()
    assert s.broker_urls() == ["kafka://b1:9093", "kafka://b2:9093"]
    assert s.sasl_mechanism is SaslMechanism.SCRAM_SHA_512
    assert s.topic("site.commands") == "prod.site.commands"
    assert s.filter.to_config().threshold_kw == 0.8
    assert s.allocator.to_config().clamp_window_s == 30.0
    assert s.allocator.to_config().order_margin == 0.03
    assert s.compliance.to_config().stale_after_s == 4.0
    assert "s3cret-value" not in repr(s)
    assert "s3cret-value" not in str(s.model_dump())
    assert s.auth_options()["sasl_plain_password"] == "s3cret-value"  # noqa: S105  # test value


def test_kafka_bootstrap_servers_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:19092")
    assert StreamsSettings().bootstrap_server_list == ["k:19092"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLOWERHUB_SECURITY_PROTOCOL": "SASL_SSL"}, "needs sasl_mechanism"),
        ({"FLOWERHUB_SASL_PASSWORD": "x"}, "SASL credentials given"),
        ({"FLOWERHUB_SSL_CAFILE": "/tmp/ca.pem"}, "TLS files given"),
        (
            {"FLOWERHUB_SECURITY_PROTOCOL": "SSL", "FLOWERHUB_SSL_CAFILE": "/nonexistent/ca.pem"},
            "no such file",
        ),
        (
            {"FLOWERHUB_SECURITY_PROTOCOL": "SSL", "FLOWERHUB_SSL_CERTFILE": "/tmp/c.pem"},
            "go together",
        ),
        ({"FLOWERHUB_BOOTSTRAP_SERVERS": "nohostport"}, "not host:port"),
        ({"FLOWERHUB_TOPIC_PREFIX": "bad prefix/"}, "topic_prefix"),
        ({"FLOWERHUB_FILTER__THRESHOLD_KW": "-1"}, "greater than or equal"),
        ({"FLOWERHUB_SECURITY_PROTOCOL": "TELNET"}, "security_protocol"),
        ({"FLOWERHUB_AGGREGATION__WINDOWS_S": "[0]"}, "positive window"),
    ],
)
def test_bad_settings_fail_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        StreamsSettings()
