"""Streams worker settings from the environment (pydantic-settings), prefix ``FLOWERHUB_``.

The Kafka connection fields and their checks are :class:`contract.kafka.KafkaSettings`'
(``FLOWERHUB_BOOTSTRAP_SERVERS`` or ``KAFKA_BOOTSTRAP_SERVERS``, ``FLOWERHUB_SECURITY_PROTOCOL``,
``FLOWERHUB_SSL_*``, ``FLOWERHUB_SASL_*``): the same names as every other service and verb.
Nested groups use ``__``: ``FLOWERHUB_FILTER__THRESHOLD_KW=0.5``. Secrets are ``SecretStr``:
never printed, never in ``repr``.

Example::

    FLOWERHUB_BOOTSTRAP_SERVERS=broker1:9093,broker2:9093
    FLOWERHUB_SECURITY_PROTOCOL=SASL_SSL
    FLOWERHUB_SASL_MECHANISM=SCRAM-SHA-512
    FLOWERHUB_SASL_USERNAME=flowerhub
    FLOWERHUB_SASL_PASSWORD_FILE=/run/secrets/kafka-password
    FLOWERHUB_SSL_CAFILE=/etc/flowerhub/ca.pem
    FLOWERHUB_TOPIC_PREFIX=prod.
"""

from __future__ import annotations

import re
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import SettingsConfigDict

from contract.kafka.settings import KafkaSettings, SaslMechanism, SecurityProtocol
from streams.steps.availability import AllocatorConfig
from streams.steps.compliance import ComplianceConfig
from streams.steps.setpoint_filter import FilterConfig

__all__ = [
    "AggregationSettings",
    "AllocatorSettings",
    "ComplianceSettings",
    "FilterSettings",
    "SaslMechanism",
    "SecurityProtocol",
    "StreamsSettings",
    "WorkersSettings",
]

_TOPIC_PREFIX = re.compile(r"^[A-Za-z0-9._-]*$")


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FilterSettings(_Group):
    """Setpoint filter thresholds (see ``streams.steps.setpoint_filter``)."""

    max_age_s: float = Field(default=5.0, ge=0, allow_inf_nan=False)
    threshold_kw: float = Field(default=0.5, ge=0, allow_inf_nan=False)
    min_interval_s: float = Field(default=10.0, ge=0, allow_inf_nan=False)
    refresh_before_s: float = Field(default=15.0, ge=0, allow_inf_nan=False)
    stop_min_validity_s: float = Field(default=60.0, ge=0, allow_inf_nan=False)
    #: How late (after its event time) a setpoint may still reach the filter before a held-
    #: back write due earlier is made without waiting for it (``steps.filter_partition``).
    hold_s: float = Field(default=1.0, ge=0, allow_inf_nan=False)

    def to_config(self) -> FilterConfig:
        return FilterConfig(**self.model_dump(exclude={"hold_s"}))


class AllocatorSettings(_Group):
    """Allocator thresholds (see ``streams.steps.availability``)."""

    telemetry_max_age_s: float = Field(default=10.0, ge=0, allow_inf_nan=False)
    clamp_window_s: float = Field(default=60.0, ge=0, allow_inf_nan=False)
    resolution_kw: float = Field(default=0.001, gt=0, allow_inf_nan=False)
    order_margin: float = Field(default=0.0, ge=0, le=0.2, allow_inf_nan=False)

    def to_config(self) -> AllocatorConfig:
        return AllocatorConfig(**self.model_dump())


class AggregationSettings(_Group):
    """Fleet aggregation windows (seconds), the late-event grace period (per partition, in
    its own stream time), and how long a caught-up partition may be silent before its
    stream time follows the clock (``steps.site_partition``: the bound on what a silent
    partition holds back)."""

    windows_s: tuple[int, ...] = (1, 10)
    grace_s: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    idle_s: float = Field(default=2.0, gt=0, allow_inf_nan=False)

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


class WorkersSettings(_Group):
    """How N workers share the work (``streams.agents.site_tasks``, ``streams.agents.leader``).

    ``session_timeout_s``: a worker that stops heartbeating (killed, frozen) loses its
    partitions and, if it led, the lead after this long (the brokers'
    ``group.min.session.timeout.ms`` must allow it: Kafka's default is 6 s; the project's
    brokers allow 1 s). ``hold_s``: how late after its event time a fleet request or a
    command result may reach the leader and still be taken in event-time order.
    ``lookback_s``: how far back a new leader re-reads the partitions' slices and the
    command results (the sites' availability, derating)."""

    session_timeout_s: float = Field(default=3.0, gt=0, allow_inf_nan=False)
    heartbeat_interval_s: float = Field(default=0.5, gt=0, allow_inf_nan=False)
    hold_s: float = Field(default=0.5, ge=0, allow_inf_nan=False)
    lookback_s: float = Field(default=30.0, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _heartbeat(self) -> Self:
        if self.heartbeat_interval_s * 2 > self.session_timeout_s:
            raise ValueError("heartbeat_interval_s must be at most half of session_timeout_s")
        return self


class StreamsSettings(KafkaSettings):
    """Everything a streams worker needs: the connection (inherited: the same fields and
    checks as every client) and the worker's own settings. ``StreamsSettings()`` reads the
    environment."""

    model_config = SettingsConfigDict(
        env_prefix="FLOWERHUB_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    topic_prefix: str = ""
    app_id: str = "flowerhub-streams"
    fleet_id: str = "flowerhub"
    filter: FilterSettings = Field(default_factory=FilterSettings)
    allocator: AllocatorSettings = Field(default_factory=AllocatorSettings)
    aggregation: AggregationSettings = Field(default_factory=AggregationSettings)
    compliance: ComplianceSettings = Field(default_factory=ComplianceSettings)
    workers: WorkersSettings = Field(default_factory=WorkersSettings)

    @model_validator(mode="after")
    def _topic_prefix(self) -> Self:
        if not _TOPIC_PREFIX.match(self.topic_prefix):
            raise ValueError(
                f"topic_prefix {self.topic_prefix!r} may only hold letters, digits, '.', '_', '-'"
            )
        return self

    def topic(self, name: str) -> str:
        """The full topic name of a logical one: ``<topic_prefix><name>``."""
        return f"{self.topic_prefix}{name}"
