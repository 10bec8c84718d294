"""Rule objects, their parameters, and the evaluation context shared by every rule module.

A :class:`Rule` is metadata (id, product, test types, requirement version, requirement text
and document reference, sampling need) plus one pure function ``Context -> Measurement``.
The rule turns the measurement into a :class:`~analytics.verdicts.Verdict`. There is one
implementation per rule; the event-log audit and the CSV audit both reach it via
:func:`analytics.rules.judge`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from analytics.delivered import delivered_mw
from analytics.timeseries import (
    FCRD_TEST_RATE,
    FCRN_TEST_RATE,
    TSO_ALLOWED_1HZ,
    FloatArray,
    SamplingRequirement,
    Series,
)
from analytics.verdicts import Comparison, TestType, Verdict
from contract.enums import Product
from contract.products import cite

# Requirement-document versions a rule can implement.
TR25 = "TR-2025-03-28"  # Nordic FCR technical requirements v1.1, 2025-03-28
SVK_LEGACY = "SVK-LEGACY"  # figures on SvK's (pre-2023) product pages
EAM25 = "EAM-2025-03-04"  # Nordic mFRR energy activation market, standard product FAT 12.5 min
AFRR_FAT = "FAT-5MIN"  # aFRR full activation time 5 min (Fingrid, Statnett)
SVK_FFR = "SVK-FFR"  # SvK FFR product page (undated, current) and Fingrid FFR page
INHOUSE = "FLOWERHUB-1"  # in-house diagnostics (e.g. polarity), not an SvK requirement
KNOWN_VERSIONS = (TR25, SVK_LEGACY, EAM25, AFRR_FAT, SVK_FFR, INHOUSE)

#: Pre-event level: the mean response over this long before an event.
PRE_WINDOW_S = cite(
    10.0,
    "FlowerHub: the pre-activation log SvK requires for FFR [SVK-QA-FFR] (10 s), inside "
    "TR25 Table 4's 30 s stabilisation before ramp 1",
)
#: NEM check: samples this long after an expected NEM change are not judged.
NEM_GRACE_S = cite(300.0, "[TR25 §3.5.1 eq 15] NEM_current is a 300 s rolling mean")
#: Polarity (in-house diagnostic) fails when the response is mirrored by more than this.
POLARITY_TOLERANCE = cite(
    0.05,
    "FlowerHub diagnostic: within the ±5 % active-power accuracy of category A "
    "[TR25 §4.1 Table 15]; not an SvK requirement",
)


class RuleError(ValueError):
    """Base of rule-layer errors that are not about the series itself."""


class MissingParameterError(RuleError):
    """A rule needs a parameter that neither the caller nor the data provided."""

    def __init__(self, parameter: str, needed_by: str, hint: str = "") -> None:
        super().__init__(f"{needed_by} needs parameter {parameter!r}{': ' + hint if hint else ''}")
        self.parameter = parameter


class UnknownParameterError(RuleError):
    """``judge`` was given a keyword that no rule understands."""


class UnknownRuleVersionError(RuleError):
    """No rule carries the requested version."""


class NoRulesError(RuleError):
    """No rule applies to the product / test type / version combination."""


class TestSequenceError(RuleError):
    """The recorded test does not follow the expected sequence (ramps, steps)."""

    __test__ = False  # not a pytest class


@dataclass(frozen=True)
class Params:
    """Every tunable of the rule layer; ``judge(**params)`` fills it, unknown keys fail.

    Power values are MW magnitudes unless stated; times in seconds on the series clock.
    """

    dp_ss_theo_mw: float | None = None
    """|ΔP_ss,theo|: FCR steady-state response (FCR-N at 0.1 Hz, FCR-D at 0.4 Hz). Default:
    the capacity (``capacity_mw`` or the median of the series' Cap_ column)."""
    capacity_mw: float | None = None
    """Capacity C of the product (FFR capacity, LER reservations). Default: Cap_ column."""
    k_red_ss: float = 1.0
    k_red_dyn: float = 1.0
    allow_1hz: bool = False
    """TSO allowed >= 1 Hz test logging (TR25 §4.3) instead of 10 Hz (FCR-D) / 5 Hz (FCR-N)."""
    ramp_starts_s: tuple[float, ...] | None = None
    """FCR-D: start times of ramps 1..6 (from a test description) instead of detection."""
    step_bounds_s: tuple[float, ...] | None = None
    """FCR-N: start of steps 0, 1, 2, 3 and end of step 3, instead of detection."""
    pre_window_s: float = PRE_WINDOW_S
    """Pre-event level = time-weighted mean response over this window before the event."""
    ss_settle_s: float | None = None
    """Steady-state window starts this long after a ramp/step ends (FCR-D 10 s, FCR-N 240 s)."""
    ss_trim_s: float | None = None
    """... and ends this long before the next ramp/step starts (FCR-D 10 s, FCR-N 2 s)."""
    full_mean_s: float | None = None
    """"Full" is 100 % of the target confirmed by the mean over this many seconds after it
    (:mod:`analytics.rules.measure`); None = the window each rule states (FFR 1 s, the
    others 10 s)."""
    ffr_activation_hz: float | None = None
    """FFR option: 49.7, 49.6 or 49.5 Hz."""
    activation_start_s: float | None = None
    """FFR/aFRR/mFRR: event start instead of detection from frequency / requested power."""
    requested_mw: float | None = None
    """aFRR/mFRR: signed requested activation instead of the series' requested signal."""
    activation_end_s: float | None = None
    """aFRR/mFRR with ``requested_mw``: end of the order (MTU end); default the data end."""
    energy_capacity_mwh: float | None = None
    """LER: usable energy for FCR (E_max - E_min in the SOC percentages below)."""
    soc_min_pct: float = 0.0
    soc_max_pct: float = 100.0
    nem_grace_s: float = NEM_GRACE_S
    """NEM check: samples this long after an expected NEM change are not judged."""
    initial_soc_pct: float | None = None
    """LER without an SOC signal: SOC at the first sample; SOC then follows -∫P dt."""
    period_s: float | None = None
    """Sine tests: the period of this record (the SvK file name carries it: Sine40)."""
    t_fme_s: float | None = None
    """Sine tests with an internal test signal: frequency-measurement time constant T_FME."""
    polarity_tolerance: float = POLARITY_TOLERANCE
    """Polarity fails when the net response is opposite by more than this fraction."""

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> Params:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise UnknownParameterError(
                f"unknown rule parameter(s) {unknown}; known: {sorted(names)}"
            )
        return cls(**kwargs)


T = TypeVar("T")


@dataclass
class Context:
    """One judge call: the series, product, parameters and a cache of shared analyses."""

    series: Series
    product: Product
    params: Params
    _cache: dict[str, object] = field(default_factory=dict)

    def cached(self, key: str, build: Callable[[Context], T]) -> T:
        if key not in self._cache:
            self._cache[key] = build(self)
        value = self._cache[key]
        return value  # type: ignore[return-value]  # stored by build() under the same key

    def dp_ss(self, needed_by: str) -> float:
        """|ΔP_ss,theo| in MW: parameter, else capacity."""
        if self.params.dp_ss_theo_mw is not None:
            value = abs(self.params.dp_ss_theo_mw)
        else:
            value = self.capacity(needed_by, "dp_ss_theo_mw")
        if value <= 0:
            raise MissingParameterError("dp_ss_theo_mw", needed_by, "must be > 0")
        return value

    def capacity(self, needed_by: str, parameter: str = "capacity_mw") -> float:
        """Capacity in MW: parameter, else the median of the series' capacity column."""
        if self.params.capacity_mw is not None:
            return abs(self.params.capacity_mw)
        cap = self.series.capacity_mw
        if cap is None:
            raise MissingParameterError(
                parameter, needed_by, "pass it or provide a Cap_ column / ReserveAssignment"
            )
        value = float(np.median(np.abs(cap)))
        if value <= 0:
            raise MissingParameterError(parameter, needed_by, "the Cap_ column is zero")
        return value

    def response(self) -> FloatArray:
        """The response attributed to this product: power - baseline - the other products'
        expected responses (:func:`analytics.delivered.delivered_mw`)."""
        return self.cached("response", lambda c: delivered_mw(c.series, c.product))

    def pre_level(self, t_event: float, what: str, *, clamp: bool = False) -> float:
        """Mean response over the pre-window before ``t_event`` (the pre-event baseline).

        ``clamp`` shortens the window to the data start (FFR: the 10 s pre-log is judged by
        its own rule); otherwise a window before the data raises InsufficientDataError.
        """
        t0 = t_event - self.params.pre_window_s
        if clamp:
            t0 = max(t0, float(self.series.t[0]))
        return self.series.mean(self.response(), t0, t_event, f"{what} pre-level")


@dataclass(frozen=True)
class Measurement:
    """What a rule function measured; the rule adds its metadata to make a Verdict."""

    measured: float
    threshold: float
    comparison: Comparison
    detail: str = ""
    threshold_high: float | None = None
    other_reading: str = ""
    """Where the facts mark the figure UNCERTAIN or CONFLICT: the other reading's result
    (this measurement judges the stricter one)."""


Evaluator = Callable[[Context], Measurement]


def _present(ctx: Context, need: str) -> bool:
    kind, _, name = need.partition(":")
    if kind == "param":
        return getattr(ctx.params, name) is not None
    if kind == "signal":
        return name in ctx.series.extra or getattr(ctx.series, name, None) is not None
    raise RuleError(f"bad optional input {need!r}: use param:<field> or signal:<name>")


@dataclass(frozen=True)
class Rule:
    """One requirement of one product in one document version."""

    rule_id: str
    product: Product
    test_types: frozenset[TestType]
    version: str
    requirement: str
    reference: str
    unit: str
    evaluate: Evaluator = field(repr=False, compare=False)
    sampling: SamplingRequirement | None = None
    needs: tuple[tuple[str, ...], ...] = ()
    """Optional inputs ("where the data allows"): groups of alternatives, each a ``Params``
    field (``param:energy_capacity_mwh``) or a series signal (``signal:soc_pct``,
    ``signal:NEM_Fcrn``). A rule whose group has no present alternative is skipped by
    ``judge`` (listed by ``skipped_rules``), or raises with ``strict=True``."""

    precondition: Callable[[Context], str | None] | None = field(
        default=None, repr=False, compare=False
    )
    """Data-dependent applicability, e.g. "an activation" for polarity: returns what is
    missing, or None when the rule applies."""

    def missing_input(self, ctx: Context) -> str | None:
        """The first unmet optional input, as text; None when the rule can be judged."""
        for group in self.needs:
            if not any(_present(ctx, need) for need in group):
                return " or ".join(group)
        return None if self.precondition is None else self.precondition(ctx)

    def describe(self) -> dict[str, object]:
        """Metadata for listings (``flowerhub audit --list-rules``)."""
        need = self.sampling
        return {
            "rule_id": self.rule_id,
            "product": self.product.value,
            "test_types": sorted(t.value for t in self.test_types),
            "rule_version": self.version,
            "requirement": self.requirement,
            "reference": self.reference,
            "unit": self.unit,
            "sampling": None if need is None else need.name,
        }

    def sampling_for(self, params: Params) -> SamplingRequirement | None:
        """The sampling need, relaxed to 1 Hz for FCR tests when the TSO allowed it."""
        if params.allow_1hz and self.sampling in (FCRD_TEST_RATE, FCRN_TEST_RATE):
            return TSO_ALLOWED_1HZ
        return self.sampling

    def judge(self, ctx: Context) -> Verdict:
        need = self.sampling_for(ctx.params)
        if need is not None:
            ctx.series.require_rate(need)
        m = self.evaluate(ctx)
        return Verdict.compare(
            rule_id=self.rule_id,
            rule_version=self.version,
            product=ctx.product,
            requirement=self.requirement,
            reference=self.reference,
            measured=m.measured,
            threshold=m.threshold,
            threshold_high=m.threshold_high,
            unit=self.unit,
            comparison=m.comparison,
            detail=m.detail,
            other_reading=m.other_reading,
        )
