"""Live compliance: FleetState + activations/reserve assignments -> ComplianceVerdict records.

State (``ComplianceState``, frozen, ``to_dict``/``from_dict``) holds the obligations in force.
Steps:

- ``add_activation(state, MarketActivation)`` / ``add_assignment(state, ReserveAssignment)``;
- ``evaluate(state, fleet_state, stale_site_ids, config) -> (state, [ComplianceVerdict])``;
- ``stale_sites(last_seen, now, config)`` picks sites whose telemetry is too old.

Required response per obligation at the window ``t = fleet_state.window_end``:

- signal-driven activation (aFRR, mFRR, NONE; kind ORDER/TEST): ``requested_mw`` between
  ``start_time`` and ``end_time``; onset = ``start_time``;
- frequency-driven (FCR-N, FCR-D, FFR; an activation of those products or an armed
  ReserveAssignment): ``capacity * fraction(mean_frequency_hz)`` from ``products`` (the
  same curves the audit uses); onset = first window where the fraction left 0 (reset when it
  returns to 0).

Measured response: the fleet's DELIVERED power ``total_power_mw - baseline_mw`` (the sum of
the sites' baselines: what they would do without reserves and orders; SvK's CalcBaseline);
a window without a baseline (telemetry written before baselines) is judged with baseline 0,
and its verdicts say so. With several products active at once (FleetState ``products``),
each is judged against its own requirement: the other products' expected responses
(``expected_mw``: their capacity at the sites' frequencies, their order changes) are taken
off the delivered power first, and the verdict says how much was.

Verdicts (one per obligation with ``|required| >= min_required_mw``), in order:

1. WRONG_POLARITY (FAIL): measured has the opposite sign of required and
   ``|measured| >= polarity_tolerance_mw``;
2. before ``curve.full_activation_s`` after onset: SLOW (FAIL) if below the due
   checkpoint (e.g. FCR-D 86 % at 7.5 s), else OK (PASS);
3. from then on (steady state): UNDER_DELIVERY (FAIL) below ``1 - under_tolerance`` of
   required, OVER_DELIVERY (WARN) above ``1 + over_tolerance``, else OK (PASS).

Plus STALE_SITES (WARN) when a frequency reserve is armed and some sites' telemetry is older
than ``stale_after_s``. Every verdict carries ``rule_id`` and ``rule_version``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from contract.enums import Finding, Product, VerdictStatus
from contract.errors import InvalidConfigError, InvalidRecordError
from contract.fields import MICROS_PER_S
from contract.products import ProductCurve, curve_for, curve_fraction, required_fraction_by
from contract.records import ComplianceVerdict, FleetState, MarketActivation, ReserveAssignment
from streams.steps.ids import derived_id

STALE_RULE_ID = "LIVE.STALE_SITES"
STALE_RULE_VERSION = "FLOWERHUB-LIVE-1"


@dataclass(frozen=True, slots=True)
class ComplianceConfig:
    """Live compliance thresholds (from ``streams.settings.ComplianceSettings``)."""

    min_required_mw: float = 0.01
    polarity_tolerance_mw: float = 0.05
    stale_after_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("min_required_mw", "polarity_tolerance_mw", "stale_after_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise InvalidConfigError(
                    f"ComplianceConfig.{name} must be finite and >= 0, got {value}"
                )


@dataclass(frozen=True, slots=True)
class Obligation:
    """One activation or armed reserve being judged."""

    obligation_id: str
    product: Product
    frequency_driven: bool
    amount_mw: float
    start: int
    end: int
    f_start_hz: float | None = None
    f_full_hz: float | None = None
    deadband_hz: float = 0.0
    is_assignment: bool = False
    onset: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "obligation_id": self.obligation_id,
            "product": self.product.value,
            "frequency_driven": self.frequency_driven,
            "amount_mw": self.amount_mw,
            "start": self.start,
            "end": self.end,
            "f_start_hz": self.f_start_hz,
            "f_full_hz": self.f_full_hz,
            "deadband_hz": self.deadband_hz,
            "is_assignment": self.is_assignment,
            "onset": self.onset,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Obligation:
        try:
            return cls(
                obligation_id=str(data["obligation_id"]),
                product=Product(data["product"]),
                frequency_driven=bool(data["frequency_driven"]),
                amount_mw=float(data["amount_mw"]),
                start=int(data["start"]),
                end=int(data["end"]),
                f_start_hz=None if data.get("f_start_hz") is None else float(data["f_start_hz"]),
                f_full_hz=None if data.get("f_full_hz") is None else float(data["f_full_hz"]),
                deadband_hz=float(data.get("deadband_hz", 0.0)),
                is_assignment=bool(data.get("is_assignment", False)),
                onset=None if data.get("onset") is None else int(data["onset"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRecordError("ComplianceState", "obligations", repr(exc)) from exc


@dataclass(frozen=True, slots=True)
class ComplianceState:
    """Obligations by id. (Entries stored before baselines came from the sites also hold a
    ``baseline_mw``, the fleet power of a quiet window; it is no longer used and ignored.)"""

    obligations: tuple[Obligation, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"obligations": [o.to_dict() for o in self.obligations]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ComplianceState:
        items = data.get("obligations", [])
        if not isinstance(items, list):
            raise InvalidRecordError("ComplianceState", "obligations", "expected a list")
        return cls(tuple(Obligation.from_dict(o) for o in items))


def _upsert(state: ComplianceState, ob: Obligation) -> ComplianceState:
    kept = tuple(o for o in state.obligations if o.obligation_id != ob.obligation_id)
    return replace(state, obligations=(*kept, ob))


def add_activation(state: ComplianceState, act: MarketActivation) -> ComplianceState:
    """Track an activation (same ``activation_id`` replaces the earlier one)."""
    curve = curve_for(act.product) if act.product is not Product.NONE else None
    freq = curve is not None and curve.frequency_activated
    return _upsert(
        state,
        Obligation(
            obligation_id=act.activation_id,
            product=act.product,
            frequency_driven=freq,
            amount_mw=abs(act.requested_mw) if freq else act.requested_mw,
            start=act.start_time,
            end=act.end_time,
            onset=None if freq else act.start_time,
        ),
    )


def add_assignment(state: ComplianceState, asg: ReserveAssignment) -> ComplianceState:
    """Track an armed frequency reserve; aFRR/mFRR/NONE capacity is judged by activations."""
    if asg.product in (Product.AFRR, Product.MFRR, Product.NONE):
        return state
    return _upsert(
        state,
        Obligation(
            obligation_id=asg.assignment_id,
            product=asg.product,
            frequency_driven=True,
            amount_mw=asg.capacity_mw,
            start=asg.valid_from,
            end=asg.valid_until,
            f_start_hz=asg.f_start_hz,
            f_full_hz=asg.f_full_hz,
            deadband_hz=asg.deadband_hz,
            is_assignment=True,
        ),
    )


def stale_sites(last_seen: Mapping[str, int], now: int, config: ComplianceConfig) -> list[str]:
    """Sites (sorted) whose last telemetry is older than ``stale_after_s`` at ``now``."""
    limit = now - round(config.stale_after_s * MICROS_PER_S)
    return sorted(site for site, t in last_seen.items() if t < limit)


def _required(ob: Obligation, curve: ProductCurve | None, fleet: FleetState) -> float:
    if not ob.frequency_driven:
        return ob.amount_mw
    assert curve is not None  # noqa: S101  # frequency-driven obligations have a curve
    if fleet.mean_frequency_hz is None:
        return 0.0
    fraction = curve_fraction(
        curve,
        fleet.mean_frequency_hz,
        f_start_hz=ob.f_start_hz,
        f_full_hz=ob.f_full_hz,
        deadband_hz=ob.deadband_hz,
    )
    return ob.amount_mw * fraction


@dataclass(frozen=True, slots=True)
class _Judgement:
    finding: Finding
    status: VerdictStatus
    rule_id: str
    threshold: float
    message: str


def _judge(
    curve: ProductCurve | None,
    *,
    required: float,
    measured: float,
    elapsed_s: float,
    config: ComplianceConfig,
) -> _Judgement:
    prefix = curve.rule_prefix if curve is not None else "NONE"
    if measured * required < 0 and abs(measured) >= config.polarity_tolerance_mw:
        return _Judgement(
            Finding.WRONG_POLARITY,
            VerdictStatus.FAIL,
            f"{prefix}.LIVE.POLARITY",
            config.polarity_tolerance_mw,
            f"response {measured:+.3f} MW against required {required:+.3f} MW",
        )
    ratio = measured / required
    full_s = curve.full_activation_s if curve is not None else 0.0
    if elapsed_s < full_s:
        assert curve is not None  # noqa: S101  # full_s > 0 only with a curve
        due = required_fraction_by(curve, elapsed_s)
        if due is not None and ratio < due.min_fraction:
            return _Judgement(
                Finding.SLOW,
                VerdictStatus.FAIL,
                due.rule_id,
                due.min_fraction,
                f"{ratio:.0%} of required after {elapsed_s:.1f} s (needs "
                f"{due.min_fraction:.0%} by {due.after_s:g} s)",
            )
        return _Judgement(Finding.OK, VerdictStatus.PASS, f"{prefix}.LIVE.RAMP", 0.0, "ramping")
    under = 1.0 - (curve.under_tolerance if curve is not None else 0.05)
    over = 1.0 + (curve.over_tolerance if curve is not None else 0.10)
    if ratio < under:
        return _Judgement(
            Finding.UNDER_DELIVERY,
            VerdictStatus.FAIL,
            f"{prefix}.LIVE.STEADY",
            under,
            f"{ratio:.0%} of required in steady state (needs >= {under:.0%})",
        )
    if ratio > over:
        return _Judgement(
            Finding.OVER_DELIVERY,
            VerdictStatus.WARN,
            f"{prefix}.LIVE.STEADY",
            over,
            f"{ratio:.0%} of required in steady state (allowed <= {over:.0%})",
        )
    return _Judgement(
        Finding.OK, VerdictStatus.PASS, f"{prefix}.LIVE.STEADY", under, f"{ratio:.0%}"
    )


def _verdict(
    fleet: FleetState,
    ob: Obligation | None,
    *,
    product: Product,
    rule_version: str,
    j: _Judgement,
    required: float,
    measured: float,
    site_ids: tuple[str, ...] = (),
) -> ComplianceVerdict:
    ob_id = ob.obligation_id if ob is not None else None
    return ComplianceVerdict(
        event_id=derived_id("verdict", fleet.event_id, ob_id, j.rule_id),
        event_time=fleet.window_end,
        fleet_id=fleet.fleet_id,
        activation_id=ob_id,
        product=product,
        rule_id=j.rule_id,
        rule_version=rule_version,
        status=j.status,
        finding=j.finding,
        required_mw=required,
        measured_mw=measured,
        threshold=j.threshold,
        message=j.message,
        site_ids=site_ids,
    )


@dataclass(frozen=True, slots=True)
class Delivered:
    """The fleet's delivered power in a window (MW) and how it was reckoned."""

    total_mw: float  # total_power_mw - baseline
    baseline_known: bool
    expected_mw: Mapping[Product, float]  # per product in FleetState.products

    @classmethod
    def of(cls, fleet: FleetState) -> Delivered:
        baseline = fleet.baseline_mw
        expected: dict[Product, float] = {}
        for ps in fleet.products:
            expected[ps.product] = expected.get(ps.product, 0.0) + ps.expected_mw
        return cls(fleet.total_power_mw - (baseline or 0.0), baseline is not None, expected)

    def for_product(self, product: Product) -> tuple[float, str]:
        """(delivered for ``product``: the others' expected responses taken off, a note on
        how it was reckoned for the verdict's message)."""
        others = {p: mw for p, mw in self.expected_mw.items() if p is not product and mw != 0.0}
        taken = math.fsum(others.values())
        notes = []
        if not self.baseline_known:
            notes.append("no site reported a baseline: 0 assumed")
        if others:
            names = ", ".join(f"{p.value} {mw:+.3f}" for p, mw in sorted(others.items()))
            notes.append(f"other products' expected response taken off ({names} MW)")
        return self.total_mw - taken, "".join(f"; {n}" for n in notes)


def evaluate(
    state: ComplianceState,
    fleet: FleetState,
    stale_site_ids: Iterable[str],
    config: ComplianceConfig,
) -> tuple[ComplianceState, list[ComplianceVerdict]]:
    """Judge one fleet window against every obligation in force (see the module doc)."""
    t = fleet.window_end
    live = [o for o in state.obligations if o.end > fleet.window_start]
    verdicts: list[ComplianceVerdict] = []
    kept: list[Obligation] = []
    delivered = Delivered.of(fleet)
    for ob in live:
        curve = curve_for(ob.product) if ob.product is not Product.NONE else None
        active = ob.start <= t and fleet.window_start < ob.end
        required = _required(ob, curve, fleet) if active else 0.0
        onset = ob.onset
        if ob.frequency_driven:
            onset = (onset if onset is not None else t) if required != 0 else None
        kept.append(replace(ob, onset=onset))
        if abs(required) < config.min_required_mw:
            continue
        measured, note = delivered.for_product(ob.product)
        elapsed_s = (t - (onset if onset is not None else ob.start)) / MICROS_PER_S
        judgement = _judge(
            curve, required=required, measured=measured, elapsed_s=elapsed_s, config=config
        )
        if note:
            judgement = replace(judgement, message=judgement.message + note)
        version = curve.rule_version if curve is not None else STALE_RULE_VERSION
        verdicts.append(
            _verdict(
                fleet,
                ob,
                product=ob.product,
                rule_version=version,
                j=judgement,
                required=required,
                measured=measured,
            )
        )
    stale = tuple(sorted(stale_site_ids))
    armed = [o for o in kept if o.frequency_driven and o.start <= t < o.end]
    if stale and armed:
        judgement = _Judgement(
            Finding.STALE_SITES,
            VerdictStatus.WARN,
            STALE_RULE_ID,
            config.stale_after_s,
            f"{len(stale)} site(s) without telemetry for more than {config.stale_after_s:g} s "
            f"while {', '.join(sorted({o.product.value for o in armed}))} is armed",
        )
        verdicts.append(
            _verdict(
                fleet,
                None,
                product=armed[0].product,
                rule_version=STALE_RULE_VERSION,
                j=judgement,
                required=0.0,
                measured=fleet.total_power_mw,
                site_ids=stale,
            )
        )
    return ComplianceState(tuple(kept)), verdicts
