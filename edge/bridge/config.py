"""Site config: which sites this bridge process owns and their limits, as one YAML file.

```yaml
bridge_id: home-0001
telemetry_interval_s: 1.0
state_dir: /var/lib/flowerhub/bridge
outbox: {dir: /var/lib/flowerhub/outbox, max_bytes: 67108864, max_events: 200000}
transport: mqtt           # homes: MQTT over TLS to the gateway's broker (the default
                          # when an mqtt: section is given); kafka: directly to Kafka
mqtt:
  host: mqtt.flowerhub.example      # re-resolved on every reconnect
  port: 8883
  ca_file: /etc/flowerhub/mqtt/ca.pem
  certs_dir: /etc/flowerhub/mqtt    # <site_id>.pem + <site_id>-key.pem per site (CN = site id)
  session_expiry_s: 86400           # commands queued while offline arrive within this
kafka:                    # transport: kafka (controllers next to the cluster); flags and
                          # FLOWERHUB_* variables name the same fields
  bootstrap_servers: kafka-1:9093
  security_protocol: SASL_SSL
  ssl_cafile: /etc/flowerhub/ca.pem
  sasl_mechanism: SCRAM-SHA-512
  sasl_username: home-0001
  sasl_password_file: /etc/flowerhub/kafka-password
sites:
  - site_id: se-0001
    oem: huawei
    host: 192.168.1.20
    port: 502
    unit_id: 1
    link: sdongle          # optional: the map's connection type (timing); default: identified
    variant: null          # optional: a firmware variant of the map; default: by firmware
    rated_power_kw: 10
    battery: {max_charge_kw: 5, max_discharge_kw: 5, capacity_kwh: 10}
    soc_reserve_min_pct: 10
    soc_reserve_max_pct: 95
    safe_mode: SELF_CONSUMPTION
    grid: {fuse_a: 20, phases: 3}   # main fuse 3 x 20 A (13.8 kW); export_limit_kw optional
    schedule:                        # optional: the site's own plan, local time (timezone)
      - {start: "02:00", end: "05:00", power_kw: -3.0}   # charge 3 kW at night
```

A site's **baseline** (what its battery does with no reserve and no order) is its own operating
mode: self-consumption (cover load - PV within the battery's limits and SoC reserve), or the
``schedule`` entry in force, or a SET_POWER's predetermined setpoint while one is in force
(``edge.bridge.baseline``). Reserves and orders ride on top, within the battery, inverter and
grid-connection limits (``edge.bridge.headroom``). A site without ``grid`` is assumed to have
a grid connection that never limits: the bridge says so in a warning at start
(:meth:`SiteConfig.assumptions`).
"""

from __future__ import annotations

import enum
from datetime import time
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from contract.kafka.cliargs import KafkaOptions
from contract.mqtt.settings import MqttSettings
from edge.hal.control import DEFAULT_HEARTBEAT_S, DEFAULT_HOLD_S, ControlPolicy


class ConfigError(Exception):
    """The bridge config file is missing or invalid; names the file and the field."""

    def __init__(self, file: str, message: str) -> None:
        self.file = file
        self.message = message
        super().__init__(f"{file}: {message}")


class SafeMode(enum.StrEnum):
    """What a site falls back to when no valid command is in force."""

    SELF_CONSUMPTION = "SELF_CONSUMPTION"
    STANDBY = "STANDBY"


_Kw = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
_Pct = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatteryLimits(_Strict):
    """Battery limits from the installation (kW >= 0; the BMS may report lower ones live)."""

    max_charge_kw: _Kw
    max_discharge_kw: _Kw
    capacity_kwh: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None


#: Line-to-neutral voltage of a Swedish low-voltage connection (230 V, SS-EN 50160 nominal).
NOMINAL_VOLTAGE_V = 230.0


class GridConnection(_Strict):
    """The site's grid connection: how much it may import (main fuse) and export.

    ``fuse_a`` (per phase, ``phases`` of ``voltage_v``) or ``import_limit_kw`` gives the import
    limit; ``export_limit_kw`` the export limit (default: the same as the import limit). The
    limits are on the whole connection (the sum of the phases): a phase imbalance inside the
    home is not modelled.
    """

    fuse_a: Annotated[float, Field(gt=0.0, le=1000.0, allow_inf_nan=False)] | None = None
    phases: Annotated[int, Field(ge=1, le=3)] = 3
    voltage_v: Annotated[float, Field(gt=0.0, le=1000.0, allow_inf_nan=False)] = NOMINAL_VOLTAGE_V
    import_limit_kw: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    export_limit_kw: _Kw | None = None

    @model_validator(mode="after")
    def _one_import_limit(self) -> GridConnection:
        if (self.fuse_a is None) == (self.import_limit_kw is None):
            raise ValueError("give the import limit once: fuse_a or import_limit_kw")
        return self

    @property
    def max_import_kw(self) -> float:
        if self.import_limit_kw is not None:
            return self.import_limit_kw
        assert self.fuse_a is not None  # noqa: S101  # _one_import_limit
        return self.phases * self.voltage_v * self.fuse_a / 1000.0

    @property
    def max_export_kw(self) -> float:
        return self.max_import_kw if self.export_limit_kw is None else self.export_limit_kw


class ScheduleEntry(_Strict):
    """A scheduled battery power from ``start`` to ``end`` (local time; ``end`` before ``start``
    runs over midnight), kW, positive = discharging."""

    start: time
    end: time
    power_kw: Annotated[float, Field(allow_inf_nan=False)]

    @model_validator(mode="after")
    def _not_empty(self) -> ScheduleEntry:
        if self.start == self.end:
            raise ValueError(f"schedule entry {self.start}-{self.end} is empty")
        return self

    def covers(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


class SiteConfig(_Strict):
    """One inverter + battery this process owns."""

    site_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
    oem: Annotated[str, Field(min_length=1)]
    model: str | None = None
    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 502
    unit_id: Annotated[int, Field(ge=0, le=255)] = 1
    # How the site is connected: a link of the map's timing (LAN port, dongle model). None:
    # the map's most conservative link until identification names one (edge/hal/device.py).
    link: str | None = None
    # A firmware variant of the map, for variants no firmware string tells apart (EKD).
    variant: str | None = None
    rated_power_kw: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    battery: BatteryLimits
    soc_reserve_min_pct: _Pct = 10.0
    soc_reserve_max_pct: _Pct = 95.0
    safe_mode: SafeMode = SafeMode.SELF_CONSUMPTION
    # The OEM's first-order response (override detection waits dead time + 3 time constants).
    response_time_constant_s: Annotated[float, Field(ge=0.0, le=60.0)] = 1.0
    response_dead_time_s: Annotated[float, Field(ge=0.0, le=60.0)] = 0.5
    response_tolerance_kw: Annotated[float, Field(ge=0.0)] = 0.3
    # Droop writes only when the target moved by at least this much.
    min_step_kw: Annotated[float, Field(ge=0.0)] = 0.05
    # While a fast reserve is armed, the frequency alone is read this often (the telemetry poll
    # is too slow for FFR / FCR-D) and the droop power written when it moved by min_step_kw.
    reserve_poll_s: Annotated[float, Field(gt=0.0, le=10.0)] = 0.2
    # While a command is in force: heartbeat writes (maps that have one) at this period, and
    # the setpoint re-written this often (OEM forced-mode timers) or as soon as telemetry shows
    # the inverter left remote control.
    keepalive_s: Annotated[float, Field(gt=0.0)] = DEFAULT_HEARTBEAT_S
    # Fault words are read this often (telemetry every poll); SiteFault goes out on a change.
    fault_interval_s: Annotated[float, Field(ge=0.0)] = 2.0
    refresh_s: Annotated[float, Field(gt=0.0)] = 600.0
    # A register the bridge wrote is trusted to still hold its value this long (unless a failed
    # write, telemetry out of remote control or a read-back says otherwise): a set-power or
    # droop update then writes only what changes. 0 = always write the whole OEM sequence.
    skip_held_writes_s: Annotated[float, Field(ge=0.0, le=3600.0)] = DEFAULT_HOLD_S
    # Rediscovery when the device is OFFLINE (DHCP moved the dongle): hosts to scan
    # ('192.168.1.0/24', '10.0.0.5-40', 'a,b') and ports (default: the map's), found by serial.
    rediscover_hosts: str | None = None
    rediscover_ports: list[Annotated[int, Field(ge=1, le=65535)]] | None = None
    rediscover_every_s: Annotated[float, Field(gt=0.0)] = 30.0
    # The grid connection's limits (None: assumed never to limit; a warning at start says so).
    grid: GridConnection | None = None
    # The site's own plan instead of self-consumption, in local time of ``timezone``.
    schedule: list[ScheduleEntry] = Field(default_factory=list)
    timezone: str = "Europe/Stockholm"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name such as Europe/Stockholm)"
            ) from None
        return value

    @model_validator(mode="after")
    def _schedule_apart(self) -> SiteConfig:
        for i, a in enumerate(self.schedule):
            for b in self.schedule[i + 1 :]:
                if a.covers(b.start) or b.covers(a.start):
                    raise ValueError(
                        f"schedule entries {a.start}-{a.end} and {b.start}-{b.end} overlap"
                    )
        return self

    def assumptions(self) -> list[str]:
        """What the bridge assumes for this site because the config leaves it out."""
        out = []
        if self.grid is None:
            out.append(
                f"site {self.site_id}: no grid connection limit in the config (grid: fuse_a or "
                "import_limit_kw, export_limit_kw): assuming the grid connection never limits; "
                "only the battery and inverter limits bound the setpoint and the headroom"
            )
        return out

    @model_validator(mode="after")
    def _reserve_order(self) -> SiteConfig:
        if self.soc_reserve_min_pct >= self.soc_reserve_max_pct:
            raise ValueError(
                f"soc_reserve_min_pct ({self.soc_reserve_min_pct}) must be below "
                f"soc_reserve_max_pct ({self.soc_reserve_max_pct})"
            )
        return self

    def control_policy(self) -> ControlPolicy:
        """How the site's device economises its writes (held registers, heartbeat period)."""
        return ControlPolicy(hold_s=self.skip_held_writes_s, heartbeat_s=self.keepalive_s)


class OutboxConfig(_Strict):
    """Where outgoing events wait while Kafka is unreachable, and how much may wait."""

    dir: Path
    max_bytes: Annotated[int, Field(ge=4096)] = 64 * 1024 * 1024
    max_events: Annotated[int, Field(ge=10)] = 200_000
    # Records that are never dropped (command results, faults) may use this much beyond it.
    critical_max_bytes: Annotated[int, Field(ge=4096)] = 16 * 1024 * 1024
    segment_bytes: Annotated[int, Field(ge=1024)] = 4 * 1024 * 1024
    fsync_interval_s: Annotated[float, Field(ge=0.0)] = 1.0


class Transport(enum.StrEnum):
    """How the bridge reaches the cloud: MQTT to the gateway (homes) or Kafka directly
    (controllers next to the cluster)."""

    MQTT = "mqtt"
    KAFKA = "kafka"


class MqttConfig(_Strict):
    """The MQTT broker of the homes, and where each site's client certificate lives."""

    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 8883
    ca_file: Path
    # <certs_dir>/<site_id>.pem and <site_id>-key.pem: `flowerhub mqtt certs --site ID --out`
    certs_dir: Path
    session_expiry_s: Annotated[int, Field(ge=0, le=0xFFFFFFFF)] = 24 * 3600
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    connect_timeout_s: Annotated[float, Field(gt=0.0, le=120.0)] = 10.0
    reconnect_min_s: Annotated[float, Field(gt=0.0)] = 0.5
    reconnect_max_s: Annotated[float, Field(gt=0.0)] = 30.0

    def site_files(self, site_id: str) -> tuple[Path, Path]:
        return self.certs_dir / f"{site_id}.pem", self.certs_dir / f"{site_id}-key.pem"

    def settings_for(self, site_id: str) -> MqttSettings:
        """The connection settings of one site's client (its own certificate)."""
        cert, key = self.site_files(site_id)
        return MqttSettings(
            host=self.host,
            port=self.port,
            ca_file=self.ca_file,
            cert_file=cert,
            key_file=key,
            keepalive_s=self.keepalive_s,
            connect_timeout_s=self.connect_timeout_s,
            session_expiry_s=self.session_expiry_s,
        )


class BridgeConfig(_Strict):
    """One bridge process: its sites, timing and local state."""

    bridge_id: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")]
    sites: Annotated[list[SiteConfig], Field(min_length=1)]
    telemetry_interval_s: Annotated[float, Field(gt=0.0, le=3600.0)] = 1.0
    status_interval_s: Annotated[float, Field(gt=0.0)] = 30.0
    state_dir: Path
    outbox: OutboxConfig
    idempotency_retention_s: Annotated[float, Field(gt=0.0)] = 7 * 24 * 3600.0
    # MQTT to the gateway (homes) or Kafka directly (next to the cluster). Unset: mqtt when
    # the file has an mqtt: section (a home's config), else kafka (see ``uplink``).
    transport: Transport | None = None
    mqtt: MqttConfig | None = None
    # How to reach Kafka: the connection fields of every service (contract.kafka), below the
    # command-line flags and above the FLOWERHUB_* environment; a password only by its file.
    kafka: KafkaOptions = Field(default_factory=KafkaOptions)
    # Shorthand of kafka.bootstrap_servers (older configs).
    kafka_bootstrap: str | None = None
    # Diagnosis: one JSON line per applied command with its stage instants (monotonic clock,
    # seconds): received from Kafka, claim durable, first write sent, writes acknowledged.
    latency_trace: Path | None = None

    @model_validator(mode="after")
    def _one_bootstrap(self) -> BridgeConfig:
        if self.kafka_bootstrap is not None and self.kafka.bootstrap_servers is not None:
            raise ValueError("kafka_bootstrap and kafka.bootstrap_servers: give one")
        return self

    @model_validator(mode="after")
    def _transport_section(self) -> BridgeConfig:
        if self.transport is Transport.MQTT and self.mqtt is None:
            raise ValueError(
                "transport mqtt needs an mqtt: section (host, ca_file, certs_dir); "
                "for a controller next to the cluster say transport: kafka"
            )
        return self

    @property
    def uplink(self) -> Transport:
        """The transport in force: the one named, else mqtt with an mqtt: section."""
        if self.transport is not None:
            return self.transport
        return Transport.MQTT if self.mqtt is not None else Transport.KAFKA

    @property
    def kafka_options(self) -> KafkaOptions:
        """The file's connection fields (``kafka_bootstrap`` folded in)."""
        if self.kafka_bootstrap is None:
            return self.kafka
        return self.kafka.model_copy(update={"bootstrap_servers": self.kafka_bootstrap})

    @model_validator(mode="after")
    def _unique_sites(self) -> BridgeConfig:
        seen: set[str] = set()
        for site in self.sites:
            if site.site_id in seen:
                raise ValueError(f"site_id {site.site_id!r} appears twice")
            seen.add(site.site_id)
        return self

    def site(self, site_id: str) -> SiteConfig | None:
        """The owned site with this id, or None when this process does not own it."""
        for site in self.sites:
            if site.site_id == site_id:
                return site
        return None

    @property
    def site_ids(self) -> frozenset[str]:
        return frozenset(s.site_id for s in self.sites)


def parse_config(data: object, file: str = "<config>") -> BridgeConfig:
    """Validate already-parsed YAML/JSON data; raise ConfigError naming the field."""
    try:
        return BridgeConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise ConfigError(file, f"{where}: {first['msg']} ({exc.error_count()} error(s))") from exc


def load_config(path: Path | str) -> BridgeConfig:
    """Read and validate a bridge config YAML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), f"cannot read: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(p), f"not valid YAML: {exc}") from exc
    return parse_config(data, str(p))
