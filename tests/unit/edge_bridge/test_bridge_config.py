"""Bridge site config: valid files load, every bad field is a ConfigError naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.bridge.config import ConfigError, SafeMode, load_config, parse_config


def _site(**over: Any) -> dict[str, Any]:
    site: dict[str, Any] = {
        "site_id": "se-0001",
        "oem": "huawei",
        "host": "127.0.0.1",
        "port": 5020,
        "unit_id": 1,
        "rated_power_kw": 10.0,
        "battery": {"max_charge_kw": 5.0, "max_discharge_kw": 6.0, "capacity_kwh": 10.0},
    }
    site.update(over)
    return site


def _config(**over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "bridge_id": "b1",
        "sites": [_site()],
        "state_dir": "/tmp/state",
        "outbox": {"dir": "/tmp/outbox"},
    }
    cfg.update(over)
    return cfg


def test_defaults_are_applied() -> None:
    cfg = parse_config(_config())
    assert cfg.telemetry_interval_s == 1.0
    site = cfg.sites[0]
    assert (site.soc_reserve_min_pct, site.soc_reserve_max_pct) == (10.0, 95.0)
    assert site.safe_mode is SafeMode.SELF_CONSUMPTION
    assert cfg.site("se-0001") is site
    assert cfg.site("se-9999") is None
    assert cfg.site_ids == frozenset({"se-0001"})


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (_config(sites=[]), "sites"),
        (_config(sites=[_site(), _site()]), "appears twice"),
        (_config(sites=[_site(port=0)]), "sites.0.port"),
        (_config(sites=[_site(unit_id=300)]), "sites.0.unit_id"),
        (_config(sites=[_site(rated_power_kw=0)]), "sites.0.rated_power_kw"),
        (_config(sites=[_site(rated_power_kw=float("nan"))]), "sites.0.rated_power_kw"),
        (_config(sites=[_site(soc_reserve_min_pct=90, soc_reserve_max_pct=80)]), "below"),
        (_config(sites=[_site(soc_reserve_max_pct=101)]), "soc_reserve_max_pct"),
        (_config(sites=[_site(site_id="a b")]), "sites.0.site_id"),
        (_config(sites=[_site(safe_mode="DISCO")]), "sites.0.safe_mode"),
        (_config(sites=[_site(colour="red")]), "sites.0.colour"),
        (_config(telemetry_interval_s=0), "telemetry_interval_s"),
        (_config(outbox={"dir": "/x", "max_bytes": 10}), "outbox.max_bytes"),
        ({"bridge_id": "b1"}, "sites"),
        ([1, 2], "<root>"),
    ],
)
def test_bad_config_names_the_field(data: object, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_config(data, "x.yaml")


def test_load_config_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text(
        "bridge_id: b1\nstate_dir: s\noutbox: {dir: o}\ntelemetry_interval_s: 0.5\n"
        "sites:\n  - {site_id: s1, oem: saj, host: h, rated_power_kw: 8,\n"
        "     battery: {max_charge_kw: 4, max_discharge_kw: 4}, safe_mode: STANDBY}\n"
    )
    cfg = load_config(path)
    assert cfg.telemetry_interval_s == 0.5
    assert cfg.sites[0].safe_mode is SafeMode.STANDBY
    assert cfg.sites[0].port == 502


@pytest.mark.parametrize(
    ("text", "message"),
    [("bridge_id: [\n", "not valid YAML"), ("bridge_id: b\n", "sites")],
)
def test_load_config_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert info.value.file == str(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_the_transport_is_mqtt_with_an_mqtt_section_else_kafka() -> None:
    from edge.bridge.config import Transport

    mqtt = {"host": "mqtt.example", "ca_file": "/etc/ca.pem", "certs_dir": "/etc/certs"}
    assert parse_config(_config()).uplink is Transport.KAFKA
    home = parse_config(_config(mqtt=mqtt))
    assert home.uplink is Transport.MQTT
    assert home.mqtt is not None
    settings = home.mqtt.settings_for("se-0001")
    assert settings.cert_file == Path("/etc/certs/se-0001.pem")
    assert settings.key_file == Path("/etc/certs/se-0001-key.pem")
    assert (settings.port, settings.session_expiry_s) == (8883, 86400)
    assert parse_config(_config(mqtt=mqtt, transport="kafka")).uplink is Transport.KAFKA
    with pytest.raises(ConfigError, match="transport mqtt needs an mqtt: section"):
        parse_config(_config(transport="mqtt"))
    with pytest.raises(ConfigError, match="transport"):
        parse_config(_config(transport="carrier-pigeon"))
