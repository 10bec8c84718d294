"""Enum symbols of the Avro contract (contract/*/*.avsc); ``StrEnum``: ``.value`` is the symbol."""

from __future__ import annotations

from enum import StrEnum


class Product(StrEnum):
    """SvK reserve product. NONE = energy dispatch outside any reserve market."""

    FCR_N = "FCR_N"
    FCR_D_UP = "FCR_D_UP"
    FCR_D_DOWN = "FCR_D_DOWN"
    FFR = "FFR"
    AFRR = "AFRR"
    MFRR = "MFRR"
    NONE = "NONE"


class CommandKind(StrEnum):
    """What a site setpoint or command asks for (SiteSetpoint.kind, SiteCommand.kind)."""

    SET_POWER = "SET_POWER"
    STOP = "STOP"
    SAFE_MODE = "SAFE_MODE"
    ARM_RESERVE = "ARM_RESERVE"


class ActivationKind(StrEnum):
    """MarketActivation.kind."""

    ORDER = "ORDER"
    TEST = "TEST"
    FREQUENCY_EVENT = "FREQUENCY_EVENT"


class SiteMode(StrEnum):
    """SiteTelemetry.mode."""

    SELF_CONSUMPTION = "SELF_CONSUMPTION"
    REMOTE = "REMOTE"
    FORCED = "FORCED"
    STANDBY = "STANDBY"
    FAULT = "FAULT"
    UNKNOWN = "UNKNOWN"


class CommandStatus(StrEnum):
    """CommandResult.status."""

    APPLIED = "APPLIED"
    CLAMPED = "CLAMPED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
    OVERRIDDEN = "OVERRIDDEN"


class VerdictStatus(StrEnum):
    """ComplianceVerdict.status."""

    PASS = "PASS"  # noqa: S105  # an Avro enum symbol, not a password
    FAIL = "FAIL"
    WARN = "WARN"


class Finding(StrEnum):
    """ComplianceVerdict.finding."""

    OK = "OK"
    WRONG_POLARITY = "WRONG_POLARITY"
    SLOW = "SLOW"
    UNDER_DELIVERY = "UNDER_DELIVERY"
    OVER_DELIVERY = "OVER_DELIVERY"
    STALE_SITES = "STALE_SITES"
