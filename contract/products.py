"""Reserve product definitions: activation curves and timing, in ONE pure module.

The live compliance step (``streams.steps.compliance``) and the audit (``analytics``) import
these, so a requirement is written once. Facts: ``shared/reference/svk-requirements.md`` §1.

Sign convention: a fraction or response > 0 means discharging/exporting (under-frequency
support), < 0 charging/importing (over-frequency support).

API:

- ``CURVES[product] -> ProductCurve`` (default droop band, timing checkpoints, tolerances,
  ``rule_version``);
- ``activation_fraction(frequency_hz, f_start_hz=..., f_full_hz=..., deadband_hz=...,
  symmetric=..., stepwise=...) -> float`` in [-1, 1];
- ``curve_fraction(curve, frequency_hz)`` with the curve's own band;
- ``required_response_mw(curve, capacity_mw, frequency_hz)``;
- ``required_fraction_by(curve, elapsed_s) -> Checkpoint | None`` (the timing envelope);
- ``ffr_full_activation_s(f_activation_hz)``;
- the requirement figures themselves (``FCRD_UP_FULL_HZ``, ``FCRD_REQ2_FRACTION``,
  ``FFR_OPTIONS``, ``AFRR_FULL_ACTIVATION_S``...): ``CURVES`` is built from them and the
  audit's rules (``analytics.rules``: ``fcrd``, ``fcrn``, ``ffr``, ``frr``) import them, so
  each figure is written once. Which requirement version judges a figure stays with the
  audit rule that uses it (``analytics.rules.base``: TR25, SVK-LEGACY, EAM25, ...); the
  ``rule_version`` of a curve names the version of the live envelope.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from contract.enums import Product
from contract.errors import InvalidConfigError

#: Nordic FCR technical requirements, version 1.1 of 28 March 2025 [TR25].
TR_2025_03_28 = "TR-2025-03-28"
#: SvK product pages (undated, pre-2023 wording: legacy timing) [SVK-FCRN], [SVK-FFR], [SVK-mFRR].
SVK_LEGACY = "SVK-PAGES-LEGACY"
#: aFRR full activation time 5 min (Fingrid/Statnett; no SvK-specific figure found) [FG-aFRR].
AFRR_FAT_5MIN = "NORDIC-AFRR-FAT-300S"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """By ``after_s`` from activation onset, at least ``min_fraction`` of the required response."""

    after_s: float
    min_fraction: float
    rule_id: str


@dataclass(frozen=True, slots=True)
class ProductCurve:
    """How one product must respond.

    ``f_start_hz``/``f_full_hz``: default droop band (0 % / 100 % activation); ``None`` for
    products activated by a TSO signal (aFRR, mFRR) rather than by local frequency.
    ``checkpoints``: the timing envelope while ramping; ``full_activation_s``: from then on
    the response is judged in steady state against ``under_tolerance``/``over_tolerance``
    (relative to the required response; TR25 Req 1 uses -5 % / +20 %).
    """

    product: Product
    f_start_hz: float | None
    f_full_hz: float | None
    symmetric: bool
    stepwise: bool
    checkpoints: tuple[Checkpoint, ...]
    full_activation_s: float
    under_tolerance: float
    over_tolerance: float
    rule_prefix: str
    rule_version: str

    @property
    def frequency_activated(self) -> bool:
        return self.f_start_hz is not None and self.f_full_hz is not None

    @property
    def direction(self) -> int:
        """+1 for up (discharge) products, -1 for down, 0 for symmetric or signal-driven."""
        if self.symmetric or self.f_start_hz is None or self.f_full_hz is None:
            return 0
        return 1 if self.f_full_hz <= self.f_start_hz else -1


# ------------------------------------------------------------------ requirement figures
# Facts: shared/reference/svk-requirements.md (the bracketed tags are its §9 sources). Up =
# under-frequency support (discharge), down = over-frequency support (charge). Every figure
# is a :class:`Cited` number: it computes as the plain number and carries its source, which
# the audit prints (``tests/unit/analytics/test_threshold_sources.py`` fails on a figure
# without one).


class Cited(float):
    """A requirement figure (or a stated in-house choice) with its source.

    Behaves as the float it is; ``source`` names the document and section (a facts-file
    tag such as ``[TR25 §3.1.2]``) or, for a choice of ours, starts with ``FlowerHub:`` and
    says why. Numpy scalars compute ~30x slower with a float subclass: code that uses a
    figure in a per-sample loop takes ``float(figure)`` first.
    """

    __slots__ = ("source",)
    source: str

    def __new__(cls, value: float, source: str) -> Cited:
        if not source.strip():
            raise InvalidConfigError(f"figure {value!r} needs a source")
        obj = super().__new__(cls, value)
        obj.source = source
        return obj

    def __reduce__(self) -> tuple[type[Cited], tuple[float, str]]:
        return (Cited, (float(self), self.source))


class CitedInt(int):
    """A whole-number requirement figure (a count) with its source; see :class:`Cited`."""

    source: str

    def __new__(cls, value: int, source: str) -> CitedInt:
        if not source.strip():
            raise InvalidConfigError(f"figure {value!r} needs a source")
        obj = super().__new__(cls, value)
        obj.source = source
        return obj

    def __reduce__(self) -> tuple[type[CitedInt], tuple[int, str]]:
        return (CitedInt, (int(self), self.source))


def cite(value: float, source: str) -> Cited:
    """``value`` with its ``source`` (see :class:`Cited`)."""
    return Cited(value, source)


#: Nominal grid frequency; FCR-N's band is centred on it.
NOMINAL_HZ = cite(50.0, "[TR25 Table 1] FCR-N 0 % activation at 50.0 Hz")
#: FCR-N: linear and symmetric, 100 % at 49.9 Hz (up) / 50.1 Hz (down).
FCRN_FULL_UP_HZ = cite(49.9, "[TR25 Table 1] FCR-N +100 % at f <= 49.9 Hz")
FCRN_FULL_DOWN_HZ = cite(50.1, "[TR25 Table 1] FCR-N -100 % at f >= 50.1 Hz")
#: FCR-N one-sided band Δf_FCR-N (ΔP_ss,theo is the response to it).
FCRN_BAND_HZ = cite(0.1, "[TR25 Table 1] one-sided band Δf_FCR-N = 0.1 Hz")
#: FCR-N legacy timing (SvK FCR-N page): 63 % within 60 s, 100 % within 3 min.
FCRN_LEGACY_RAMP_S = cite(60.0, "[SVK-FCRN] 63 % within 60 s [LEGACY]")
FCRN_LEGACY_RAMP_FRACTION = cite(0.63, "[SVK-FCRN] 63 % within 60 s [LEGACY]")
FCRN_LEGACY_FULL_S = cite(180.0, "[SVK-FCRN] 100 % within 3 min [LEGACY]; [FG-FCR-old] 3 min")
#: FCR-D up: 0 % at 49.9 Hz, linear to 100 % at 49.5 Hz; down mirrored about 50 Hz.
FCRD_UP_START_HZ = cite(49.9, "[TR25 Table 1] FCR-D up 0 % at f >= 49.9 Hz")
FCRD_UP_FULL_HZ = cite(49.5, "[TR25 Table 1] FCR-D up 100 % at f <= 49.5 Hz")
FCRD_DOWN_START_HZ = cite(50.1, "[TR25 Table 1] FCR-D down 0 % at f <= 50.1 Hz")
FCRD_DOWN_FULL_HZ = cite(50.5, "[TR25 Table 1] FCR-D down 100 % at f >= 50.5 Hz")
#: FCR-D one-sided band Δf_FCR-D.
FCRD_BAND_HZ = cite(0.4, "[TR25 Table 1] one-sided band Δf_FCR-D = 0.4 Hz")
#: FCR-D Req 2: ΔP 7.5 s after the start of ramp 5 >= 0.86·ΔP_ss,theo.
FCRD_REQ2_AFTER_S = cite(7.5, "[TR25 §3.1.2] Req 2/3: 7.5 s after the ramp-5 start")
FCRD_REQ2_FRACTION = cite(0.86, "[TR25 §3.1.2] Req 2: ΔP(7.5 s) >= 0.86·ΔP_ss,theo")
#: FCR-D Req 3: E(0-7.5 s) >= 3.2 s·ΔP_ss,theo.
FCRD_REQ3_ENERGY_S = cite(3.2, "[TR25 §3.1.2] Req 3: E_7.5s >= 3.2 s·ΔP_ss,theo")
#: FCR-D Req 4: t_nadir = ramp-1 start + 4.4 s; excess energy over the next 40 s
#: (floor min(|ΔP_nadir|, 0.5·|ΔP_ss,theo|)) <= 2.5 s·|ΔP_ss,theo|.
FCRD_REQ4_NADIR_S = cite(4.4, "[TR25 §3.1.2] Req 4: t_nadir = ramp-1 start + 4.4 s")
FCRD_REQ4_WINDOW_S = cite(40.0, "[TR25 §3.1.2] Req 4: k in [t_nadir, t_nadir + 40 s]")
FCRD_REQ4_FLOOR_FRACTION = cite(0.5, "[TR25 §3.1.2] Req 4: min(|ΔP_nadir|, 0.5·|ΔP_ss,theo|)")
FCRD_REQ4_ENERGY_S = cite(2.5, "[TR25 §3.1.2] Req 4: <= 2.5 s·|ΔP_ss,theo|")
#: FCR-D legacy timing (SvK FCR-D page): 50 % within 5 s, 100 % within 30 s.
FCRD_LEGACY_HALF_S = cite(5.0, "[SVK-FCRDned] 50 % within 5 s [LEGACY]; [FG-FCR-old]")
FCRD_LEGACY_HALF_FRACTION = cite(0.5, "[SVK-FCRDned] 50 % within 5 s [LEGACY]")
FCRD_LEGACY_FULL_S = cite(30.0, "[SVK-FCRDned] 100 % within 30 s [LEGACY]; [FG-FCR-old]")
#: FCR steady state, TR25 Req 1: the response within -5 % / +20 % of the required one
#: (relative; mirrored, -20 % / +5 %, for a charging step).
FCR_SS_UNDER_TOLERANCE = cite(0.05, "[TR25 §3.1.1/§3.1.2] Req 1 lower bound -0.05")
FCR_SS_OVER_TOLERANCE = cite(0.20, "[TR25 §3.1.1/§3.1.2] Req 1 upper bound +0.20")
#: Req 9 reduction factor: the needed K_red,dyn must not fall below the product minimum.
FCRN_K_RED_DYN_MIN = cite(0.9, "[TR25 §3.3] minimum K_red,dyn 0.9 for FCR-N")
FCRD_K_RED_DYN_MIN = cite(0.75, "[TR25 §3.3] minimum K_red,dyn 0.75 for FCR-D")
#: FFR activation options: activation frequency -> full activation time. The project brief
#: paired them the other way round; the three sources agree on this pairing (facts §1.2).
FFR_OPTIONS: Mapping[float, float] = MappingProxyType(
    {
        cite(49.7, "[SVK-FFR], [FG-FFR] option 49.7 Hz"): cite(
            1.3, "[SVK-FFR], [FG-FFR], [FG-dev-FFR] 49.7 Hz -> full within 1.3 s"
        ),
        cite(49.6, "[SVK-FFR], [FG-FFR] option 49.6 Hz"): cite(
            1.0, "[SVK-FFR], [FG-FFR], [FG-dev-FFR] 49.6 Hz -> full within 1.0 s"
        ),
        cite(49.5, "[SVK-FFR], [FG-FFR] option 49.5 Hz"): cite(
            0.7, "[SVK-FFR], [FG-FFR], [FG-dev-FFR] 49.5 Hz -> full within 0.7 s"
        ),
    }
)
#: The pairing the project brief stated (49.7 Hz -> 0.7 s ... 49.5 Hz -> 1.3 s), contradicted
#: by every source (facts §1.2 [CONFLICT with brief]); the audit shows its result beside.
FFR_BRIEF_OPTIONS: Mapping[float, float] = MappingProxyType(
    {
        cite(49.7, "project brief (contradicted by [SVK-FFR], [FG-FFR])"): cite(
            0.7, "project brief: 49.7 Hz -> 0.7 s (contradicted by [SVK-FFR], [FG-FFR])"
        ),
        cite(49.6, "project brief"): cite(1.0, "project brief: 49.6 Hz -> 1.0 s"),
        cite(49.5, "project brief (contradicted by [SVK-FFR], [FG-FFR])"): cite(
            1.3, "project brief: 49.5 Hz -> 1.3 s (contradicted by [SVK-FFR], [FG-FFR])"
        ),
    }
)
#: The option the live curve assumes when an assignment names none.
FFR_DEFAULT_HZ = cite(49.7, "FlowerHub: the slowest option [SVK-FFR] when none is named")
#: FFR support: >= 30 s, or >= 5 s when deactivation is at most 20 % of C per second.
FFR_SUPPORT_S = cite(30.0, "[SVK-FFR] support >= 30 s; rule wording [FG-FFR]")
FFR_SHORT_SUPPORT_S = cite(5.0, "[SVK-FFR] support >= 5 s with slow deactivation [FG-FFR]")
FFR_SLOW_DEACTIVATION = cite(0.20, "[SVK-FFR], [FG-FFR] deactivation <= 20 % of C per s")
#: FFR logging: 100 ms from 10 s before the activation to 15 min after it.
FFR_PRE_LOG_S = cite(10.0, "[SVK-QA-FFR] 100 ms logging from 10 s before activation")
FFR_POST_LOG_S = cite(900.0, "[SVK-QA-FFR] 100 ms logging until 15 min after activation")
#: aFRR full activation time 5 min [FG-aFRR], [SN-aFRR].
AFRR_FULL_ACTIVATION_S = cite(300.0, "[FG-aFRR], [SN-aFRR] FAT <= 5 min")
#: mFRR: 100 % within 15 min (SvK mFRR page, legacy).
MFRR_FULL_ACTIVATION_S = cite(900.0, "[SVK-mFRR] activation 100 % within 15 min [LEGACY]")
#: mFRR EAM standard product: FAT 12.5 min (2.5 min preparation + 10 min ramp), counted from
#: the activation message, which comes 7.5 min before the MTU starts; so full power is due
#: 5 min after the MTU start, held until 5 min before the MTU end (deactivation may start
#: then). A MarketActivation's start_time is the MTU start (MarketActivation.avsc).
MFRR_EAM_FULL_ACTIVATION_S = cite(750.0, "[FG-mFRR-TC] FAT 12.5 min = 2.5 min + 10 min ramp")
MFRR_EAM_MESSAGE_LEAD_S = cite(450.0, "[FG-dev-mFRR] activation messages 7.5 min before the MTU")
MFRR_EAM_FULL_AFTER_MTU_START_S = cite(
    300.0, "[FG-mFRR-TC] full power reached 5 min after MTU start (12.5 - 7.5 min)"
)
MFRR_EAM_RAMP_DOWN_S = cite(300.0, "[FG-mFRR-TC] deactivation may start 5 min before MTU end")
MFRR_EAM_HOLD_S = cite(300.0, "[FG-mFRR-TC] full power held >= 5 min")

# The live envelope (streams.steps.compliance) of the signal-driven products: no source gives
# a tracking tolerance or a mid-ramp figure for aFRR/mFRR (facts §1.3/§1.4 [GAP]). These are
# live-monitoring choices; the audit judges the sourced figures above, not these.
_LIVE_FRR_UNDER = cite(0.05, "FlowerHub: live aFRR/mFRR band, FCR's Req 1 -5 % (no FRR source)")
_LIVE_FRR_OVER = cite(0.10, "FlowerHub: live aFRR/mFRR band +10 % (no FRR source, facts [GAP])")
_LIVE_RAMP_HALF = cite(0.5, "FlowerHub: live aFRR/mFRR envelope, half the order at half the FAT")


def ffr_full_activation_s(f_activation_hz: float) -> float:
    """Full activation time of the FFR option chosen by its activation frequency."""
    for f_hz, seconds in FFR_OPTIONS.items():
        if math.isclose(f_hz, f_activation_hz, abs_tol=1e-6):
            return seconds
    raise InvalidConfigError(f"no FFR option at {f_activation_hz} Hz (options: 49.7, 49.6, 49.5)")


CURVES: Mapping[Product, ProductCurve] = MappingProxyType(
    {
        # FCR-N: linear, symmetric, 100 % at 49.9 / 50.1 Hz [TR25 Table 1]. TR25 has no
        # time-domain figure; the live envelope uses SvK's legacy 63 % in 60 s, 100 % in 3 min.
        Product.FCR_N: ProductCurve(
            product=Product.FCR_N,
            f_start_hz=NOMINAL_HZ,
            f_full_hz=FCRN_FULL_UP_HZ,
            symmetric=True,
            stepwise=False,
            checkpoints=(
                Checkpoint(FCRN_LEGACY_RAMP_S, FCRN_LEGACY_RAMP_FRACTION, "FCRN.LIVE.RAMP60"),
            ),
            full_activation_s=FCRN_LEGACY_FULL_S,
            under_tolerance=FCR_SS_UNDER_TOLERANCE,
            over_tolerance=FCR_SS_OVER_TOLERANCE,
            rule_prefix="FCRN",
            rule_version=TR_2025_03_28,
        ),
        # FCR-D up: linear 49.9 -> 49.5 Hz; Req 2: dP(7.5 s) >= 0.86 dP_ss [TR25 §3.1.2];
        # 100 % within 30 s (legacy) is when steady state is judged.
        Product.FCR_D_UP: ProductCurve(
            product=Product.FCR_D_UP,
            f_start_hz=FCRD_UP_START_HZ,
            f_full_hz=FCRD_UP_FULL_HZ,
            symmetric=False,
            stepwise=False,
            checkpoints=(
                Checkpoint(FCRD_REQ2_AFTER_S, FCRD_REQ2_FRACTION, "FCRD_UP.LIVE.REQ2.DP75"),
            ),
            full_activation_s=FCRD_LEGACY_FULL_S,
            under_tolerance=FCR_SS_UNDER_TOLERANCE,
            over_tolerance=FCR_SS_OVER_TOLERANCE,
            rule_prefix="FCRD_UP",
            rule_version=TR_2025_03_28,
        ),
        Product.FCR_D_DOWN: ProductCurve(
            product=Product.FCR_D_DOWN,
            f_start_hz=FCRD_DOWN_START_HZ,
            f_full_hz=FCRD_DOWN_FULL_HZ,
            symmetric=False,
            stepwise=False,
            checkpoints=(
                Checkpoint(FCRD_REQ2_AFTER_S, FCRD_REQ2_FRACTION, "FCRD_DOWN.LIVE.REQ2.DP75"),
            ),
            full_activation_s=FCRD_LEGACY_FULL_S,
            under_tolerance=FCR_SS_UNDER_TOLERANCE,
            over_tolerance=FCR_SS_OVER_TOLERANCE,
            rule_prefix="FCRD_DOWN",
            rule_version=TR_2025_03_28,
        ),
        # FFR: relay-like, full at the activation frequency within 1.3 / 1.0 / 0.7 s.
        # Default option 49.7 Hz -> 1.3 s; an assignment's f_full_hz picks another option.
        Product.FFR: ProductCurve(
            product=Product.FFR,
            f_start_hz=FFR_DEFAULT_HZ,
            f_full_hz=FFR_DEFAULT_HZ,
            symmetric=False,
            stepwise=True,
            checkpoints=(),
            full_activation_s=FFR_OPTIONS[FFR_DEFAULT_HZ],
            # no steady-state figure for FFR: the live envelope borrows FCR's
            under_tolerance=FCR_SS_UNDER_TOLERANCE,
            over_tolerance=FCR_SS_OVER_TOLERANCE,
            rule_prefix="FFR",
            rule_version=SVK_LEGACY,
        ),
        # aFRR: follow the TSO signal, full activation time 5 min [FG-aFRR], [SN-aFRR].
        Product.AFRR: ProductCurve(
            product=Product.AFRR,
            f_start_hz=None,
            f_full_hz=None,
            symmetric=False,
            stepwise=False,
            checkpoints=(
                Checkpoint(
                    AFRR_FULL_ACTIVATION_S * _LIVE_RAMP_HALF, _LIVE_RAMP_HALF, "AFRR.LIVE.RAMP"
                ),
            ),
            full_activation_s=AFRR_FULL_ACTIVATION_S,
            under_tolerance=_LIVE_FRR_UNDER,
            over_tolerance=_LIVE_FRR_OVER,
            rule_prefix="AFRR",
            rule_version=AFRR_FAT_5MIN,
        ),
        # mFRR: 100 % within 15 min (SvK page; the EAM standard product says 12.5 min
        # [FG-mFRR-TC]: the more lenient figure until SvK confirms).
        Product.MFRR: ProductCurve(
            product=Product.MFRR,
            f_start_hz=None,
            f_full_hz=None,
            symmetric=False,
            stepwise=False,
            checkpoints=(
                Checkpoint(
                    MFRR_FULL_ACTIVATION_S * _LIVE_RAMP_HALF, _LIVE_RAMP_HALF, "MFRR.LIVE.RAMP"
                ),
            ),
            full_activation_s=MFRR_FULL_ACTIVATION_S,
            under_tolerance=_LIVE_FRR_UNDER,
            over_tolerance=_LIVE_FRR_OVER,
            rule_prefix="MFRR",
            rule_version=SVK_LEGACY,
        ),
    }
)


def curve_for(product: Product) -> ProductCurve:
    """The curve of a reserve product (``InvalidConfigError`` for ``Product.NONE``)."""
    try:
        return CURVES[product]
    except KeyError:
        raise InvalidConfigError(f"{product} is not a reserve product") from None


def activation_fraction(
    frequency_hz: float,
    *,
    f_start_hz: float,
    f_full_hz: float,
    deadband_hz: float = 0.0,
    symmetric: bool = False,
    stepwise: bool = False,
) -> float:
    """Required activation in [-1, 1] at ``frequency_hz`` (> 0 = discharge).

    Linear between ``f_start_hz`` (0 %) and ``f_full_hz`` (100 %), saturated beyond (FCR-D
    providers may go further; the requirement stops at 100 %). Under-frequency bands
    (``f_full < f_start``) discharge, over-frequency bands charge. ``symmetric`` (FCR-N)
    mirrors the band around ``f_start``. Inside ``|f - f_start| <= deadband_hz`` the
    requirement is 0; outside it the line is not shifted. ``stepwise`` (FFR): 100 % as soon
    as the frequency reaches ``f_full_hz``, 0 otherwise.
    """
    if not math.isfinite(frequency_hz):
        raise InvalidConfigError(f"frequency must be finite, got {frequency_hz}")
    sign = 1.0 if f_full_hz <= f_start_hz else -1.0
    if stepwise:
        reached = frequency_hz <= f_full_hz if sign > 0 else frequency_hz >= f_full_hz
        return sign if reached else 0.0
    band = f_start_hz - f_full_hz
    if band == 0:
        raise InvalidConfigError("f_start_hz == f_full_hz needs stepwise=True")
    if abs(frequency_hz - f_start_hz) <= deadband_hz:
        return 0.0
    x = (f_start_hz - frequency_hz) / band
    low = -1.0 if symmetric else 0.0
    return min(max(x, low), 1.0) * sign


def curve_fraction(
    curve: ProductCurve,
    frequency_hz: float,
    *,
    f_start_hz: float | None = None,
    f_full_hz: float | None = None,
    deadband_hz: float = 0.0,
) -> float:
    """``activation_fraction`` with the curve's band unless an assignment overrides it."""
    start = curve.f_start_hz if f_start_hz is None else f_start_hz
    full = curve.f_full_hz if f_full_hz is None else f_full_hz
    if start is None or full is None:
        raise InvalidConfigError(f"{curve.product} is not activated by frequency")
    return activation_fraction(
        frequency_hz,
        f_start_hz=start,
        f_full_hz=full,
        deadband_hz=deadband_hz,
        symmetric=curve.symmetric,
        stepwise=curve.stepwise,
    )


def required_response_mw(curve: ProductCurve, capacity_mw: float, frequency_hz: float) -> float:
    """Required fleet response (MW, signed) of ``capacity_mw`` held for ``curve.product``."""
    return abs(capacity_mw) * curve_fraction(curve, frequency_hz)


def required_fraction_by(curve: ProductCurve, elapsed_s: float) -> Checkpoint | None:
    """The strictest checkpoint already due ``elapsed_s`` after onset (None before the first)."""
    due: Checkpoint | None = None
    for cp in curve.checkpoints:
        if elapsed_s >= cp.after_s and (due is None or cp.min_fraction >= due.min_fraction):
            due = cp
    return due


#: Every market product (``Product`` without NONE), in the contract's symbol order.
MARKET_PRODUCTS: tuple[Product, ...] = tuple(p for p in Product if p is not Product.NONE)

#: SvK's service token per product in its CSV file names and column names (Fcrn, FcrdUp,
#: FcrdDo are SvK's; Ffr, Afrr, Mfrr follow the same pattern: our extension).
SVK_SERVICES: Mapping[Product, str] = MappingProxyType(
    {
        Product.FCR_N: "Fcrn",
        Product.FCR_D_UP: "FcrdUp",
        Product.FCR_D_DOWN: "FcrdDo",
        Product.FFR: "Ffr",
        Product.AFRR: "Afrr",
        Product.MFRR: "Mfrr",
    }
)


def rule_tag(product: Product) -> str:
    """Prefix of the product's rule ids: FCRN, FCRD_UP, FCRD_DOWN, FFR, AFRR, MFRR."""
    return curve_for(product).rule_prefix


def svk_service(product: Product) -> str:
    """SvK CSV service token (``InvalidConfigError`` for ``Product.NONE``)."""
    try:
        return SVK_SERVICES[product]
    except KeyError:
        raise InvalidConfigError(f"{product} has no SvK service token") from None


def is_fcr_d(product: Product) -> bool:
    return product in (Product.FCR_D_UP, Product.FCR_D_DOWN)


def direction(product: Product) -> int:
    """+1 for up (injection) products, -1 for FCR-D down, 0 for symmetric or ordered ones."""
    return curve_for(product).direction
