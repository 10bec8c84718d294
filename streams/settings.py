"""Streams worker settings from the environment (pydantic-settings), prefix ``FLOWERHUB_``.

Nested groups use ``__``: ``FLOWERHUB_FILTER__THRESHOLD_KW=0.5``. The bootstrap servers also
come from ``KAFKA_BOOTSTRAP_SERVERS`` (the project-wide override) when the prefixed variable
is not set. Secrets are ``SecretStr``: never printed, never in ``repr``.

Example::

    FLOWERHUB_BOOTSTRAP_SERVERS=broker1:9093,broker2:9093
    FLOWERHUB_SECURITY_PROTOCOL=SASL_SSL
    FLOWERHUB_SASL_MECHANISM=SCRAM-SHA-512
    FLOWERHUB_SASL_USERNAME=flowerhub
    FLOWERHUB_SASL_PASSWORD=...
    FLOWERHUB_SSL_CAFILE=/etc/flowerhub/ca.pem
    FLOWERHUB_TOPIC_PREFIX=prod.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.steps.availability import AllocatorConfig
from streams.steps.compliance import ComplianceConfig
from streams.steps.setpoint_filter import FilterConfig

_TOPIC_PREFIX = re.compile(r"^[A-Za-z0-9._-]*$")
_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


class SecurityProtocol(StrEnum):
    """Kafka ``security.protocol``."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def uses_sasl(self) -> bool:
        return self in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)

    @property
    def uses_tls(self) -> bool:
        return self in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)


class SaslMechanism(StrEnum):
    """Kafka ``sasl.mechanism``."""

    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FilterSettings(_Group):
    """Setpoint filter thresholds (see ``streams.steps.setpoint_filter``)."""

    max_age_s: float = Field(default=5.0, ge=0, allow_inf_nan=False)
    threshold_kw: float = Field(default=0.5, ge=0, allow_inf_nan=False)
    min_interval_s: float = Field(default=10.0, ge=0, allow_inf_nan=False)
    refresh_before_s: float = Field(default=15.0, ge=0, allow_inf_nan=False)
    stop_min_validity_s: float = Field(default=60.0, ge=0, allow_inf_nan=False)
    #: Period of the agent's timer that calls ``setpoint_filter.tick`` over the table.
    tick_interval_s: float = Field(default=1.0, gt=0, allow_inf_nan=False)

    def to_config(self) -> FilterConfig:
        return FilterConfig(**self.model_dump(exclude={"tick_interval_s"}))


class AllocatorSettings(_Group):
    """Allocator thresholds (see ``streams.steps.availability``)."""

    telemetry_max_age_s: float = Field(default=10.0, ge=0, allow_inf_nan=False)
    clamp_window_s: float = Field(default=60.0, ge=0, allow_inf_nan=False)
    resolution_kw: float = Field(default=0.001, gt=0, allow_inf_nan=False)

    def to_config(self) -> AllocatorConfig:
        return AllocatorConfig(**self.model_dump())


class AggregationSettings(_Group):
    """Fleet aggregation windows (seconds) and the late-event grace period."""

    windows_s: tuple[int, ...] = (1, 10)
    grace_s: float = Field(default=1.0, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _windows(self) -> Self:
        if not self.windows_s or any(w <= 0 for w in self.windows_s):
            raise ValueError("windows_s must hold positive window lengths")
        return self


class ComplianceSettings(_Group):
    """Live compliance thresholds (see ``streams.steps.compliance``)."""

    min_required_mw: float = Field(default=0.01, ge=0, allow_inf_nan=False)
    polarity_tolerance_mw: float = Field(default=0.05, ge=0, allow_inf_nan=False)
    stale_after_s: float = Field(default=10.0, ge=0, allow_inf_nan=False)

    def to_config(self) -> ComplianceConfig:
        return ComplianceConfig(**self.model_dump())


class StreamsSettings(BaseSettings):
    """Everything a streams worker needs; ``StreamsSettings()`` reads the environment."""

    model_config = SettingsConfigDict(
        env_prefix="FLOWERHUB_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
    )

    bootstrap_servers: str = Field(
        default="localhost:9092",
        validation_alias=AliasChoices("FLOWERHUB_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated host:port list.",
    )
    security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    topic_prefix: str = ""
    app_id: str = "flowerhub-streams"
    fleet_id: str = "flowerhub"
    filter: FilterSettings = Field(default_factory=FilterSettings)
    allocator: AllocatorSettings = Field(default_factory=AllocatorSettings)
    aggregation: AggregationSettings = Field(default_factory=AggregationSettings)
    compliance: ComplianceSettings = Field(default_factory=ComplianceSettings)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        servers = self.bootstrap_server_list
        if not servers:
            raise ValueError("bootstrap_servers is empty")
        bad = [s for s in servers if not _HOST_PORT.match(s)]
        if bad:
            raise ValueError(f"bootstrap_servers: not host:port: {', '.join(bad)}")
        if not _TOPIC_PREFIX.match(self.topic_prefix):
            raise ValueError(
                f"topic_prefix {self.topic_prefix!r} may only hold letters, digits, '.', '_', '-'"
            )
        if self.security_protocol.uses_sasl:
            missing = [
                name
                for name in ("sasl_mechanism", "sasl_username", "sasl_password")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(
                    f"security_protocol {self.security_protocol} needs {', '.join(missing)}"
                )
        elif self.sasl_password is not None or self.sasl_username is not None:
            raise ValueError(
                f"SASL credentials given but security_protocol is {self.security_protocol}"
            )
        if not self.security_protocol.uses_tls and (
            self.ssl_cafile or self.ssl_certfile or self.ssl_keyfile
        ):
            raise ValueError(f"TLS files given but security_protocol is {self.security_protocol}")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together")
        return self

    @property
    def bootstrap_server_list(self) -> list[str]:
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]

    def broker_urls(self) -> list[str]:
        """Faust broker URLs (``kafka://host:port`` each)."""
        return [f"kafka://{s}" for s in self.bootstrap_server_list]

    def topic(self, name: str) -> str:
        """The full topic name of a logical one: ``<topic_prefix><name>``."""
        return f"{self.topic_prefix}{name}"

    def kafka_client_options(self) -> dict[str, Any]:
        """Keyword options for an aiokafka client (the caller builds the SSL context from the
        ``ssl_*`` paths). Holds the SASL password in clear: pass it on, never log it."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_server_list,
            "security_protocol": self.security_protocol.value,
        }
        if self.security_protocol.uses_sasl:
            assert self.sasl_mechanism is not None  # noqa: S101  # checked by _consistent
            assert self.sasl_password is not None  # noqa: S101  # idem
            options["sasl_mechanism"] = self.sasl_mechanism.value
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return options
