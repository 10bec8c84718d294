"""The bridge config's ``kafka:`` section: the connection fields of every service."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from contract.kafka.cliargs import resolve
from contract.kafka.settings import SecurityProtocol
from edge.bridge.config import ConfigError, parse_config

SITE = {
    "site_id": "s1",
    "oem": "huawei",
    "host": "127.0.0.1",
    "rated_power_kw": 10,
    "battery": {"max_charge_kw": 5, "max_discharge_kw": 5},
}


def config(**extra: Any) -> dict[str, Any]:
    return {
        "bridge_id": "b1",
        "sites": [SITE],
        "state_dir": "/tmp/s",
        "outbox": {"dir": "/tmp/o"},
        **extra,
    }


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FLOWERHUB_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)


def test_the_kafka_section_resolves_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    password = tmp_path / "pw"
    password.write_text("s3cret")
    monkeypatch.setenv("FLOWERHUB_CLIENT_ID", "home-0001")
    cfg = parse_config(
        config(
            kafka={
                "bootstrap_servers": "k1:9093",
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "SCRAM-SHA-256",
                "sasl_username": "home-0001",
                "sasl_password_file": str(password),
            }
        )
    )
    s = resolve(cfg.kafka_options)
    assert s.bootstrap_servers == "k1:9093"
    assert s.security_protocol is SecurityProtocol.SASL_PLAINTEXT
    assert s.client_id == "home-0001"  # from the environment
    assert s.sasl_password is not None
    assert s.sasl_password.get_secret_value() == "s3cret"


def test_kafka_bootstrap_is_a_shorthand() -> None:
    cfg = parse_config(config(kafka_bootstrap="k:1"))
    assert resolve(cfg.kafka_options).bootstrap_servers == "k:1"
    with pytest.raises(ConfigError, match="give one"):
        parse_config(config(kafka_bootstrap="k:1", kafka={"bootstrap_servers": "k:2"}))


def test_a_password_is_never_inline() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.sasl_password: Extra inputs"):
        parse_config(config(kafka={"sasl_password": "inline"}))
