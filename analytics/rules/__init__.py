"""SvK audit rules: one implementation per rule, selected by product, test type and version.

Entry point for every audit (event log or SvK CSV)::

    from analytics.rules import judge
    verdicts = judge(series, Product.FCR_D_UP, TestType.RAMP, dp_ss_theo_mw=1.2)

``rule_version=None`` judges every version that has a rule for the product and test type
(TR25 and the legacy SvK figures side by side, each verdict carrying its version); a
version string keeps only rules of that version plus the in-house diagnostics
(``FLOWERHUB-1``, e.g. polarity), which are not SvK requirements and carry no version of
their own. Keyword parameters are the fields of :class:`~analytics.rules.base.Params`;
an unknown keyword raises :class:`~analytics.rules.base.UnknownParameterError`.

Rules that need optional data ("where the data allows": LER energy, NEM flags, an
activation for polarity) are skipped when it is absent; :func:`skipped_rules` lists them
with the reason, ``strict=True`` raises instead. Sine tests: one record is one period
(``period_s``); :func:`judge_sine_set` judges Req 8/9 over all periods of a test.

Modules: ``fcrd`` (FCR-D ramp test), ``fcrn`` (FCR-N step test), ``sine`` (Req 8/9/10),
``ffr``, ``frr`` (aFRR, mFRR), ``common`` (polarity), ``ler`` (endurance, NEM); shared
plumbing in ``base`` (Rule, Params, Context) and ``segments`` (ramp/step detection).
The product figures the rules judge against (activation and full-activation frequencies,
full-activation times, fractions, tolerances) are defined once in
``contract.products`` (pure, shared with live compliance) and imported here; the
requirement version stays with each rule (``base``: TR25, SVK-LEGACY, ...).

Errors are typed: :class:`~analytics.timeseries.SeriesError` subclasses for the data
(sampling too coarse for a named requirement, missing signal, window outside the data),
:class:`~analytics.rules.base.RuleError` subclasses for parameters and test sequences.
:func:`judge_each` keeps going past a rule that cannot be evaluated and returns its error
beside the other rules' verdicts, so one requirement's error never hides another's result.

Conservative policy (the report's Method, :func:`method_lines`): every threshold carries its
source (``contract.products.Cited``); "full" is 100 % with a stated short mean
(:mod:`analytics.rules.measure`), never a tolerance without a source; where the facts mark a
figure UNCERTAIN or CONFLICT the stricter reading decides and the verdict shows the other
reading's result (``Verdict.other_reading``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from analytics.rules import common, fcrd, fcrn, ffr, frr, ler, sine
from analytics.rules.base import (
    INHOUSE,
    KNOWN_VERSIONS,
    Context,
    MissingParameterError,
    NoRulesError,
    Params,
    Rule,
    RuleError,
    TestSequenceError,
    UnknownParameterError,
    UnknownRuleVersionError,
)
from analytics.rules.sine import SineSetResult, TestSignal, judge_sine_set
from analytics.timeseries import (
    FFR_EVENT_RATE,
    OPERATION_RATE,
    SamplingRequirement,
    Series,
    SeriesError,
)
from analytics.verdicts import TestType, Verdict
from contract.enums import Product
from contract.products import Cited, CitedInt, rule_tag

__all__ = [
    "KNOWN_VERSIONS",
    "REGISTRY",
    "MissingParameterError",
    "NoRulesError",
    "Params",
    "Rule",
    "RuleError",
    "RuleRegistry",
    "SineSetResult",
    "TestSequenceError",
    "TestSignal",
    "UnknownParameterError",
    "UnknownRuleVersionError",
    "judge",
    "judge_each",
    "judge_sine_set",
    "method_lines",
    "polarity_offenders",
    "required_sampling",
    "skipped_rules",
]


class RuleRegistry:
    """All rules; list and select them by product, test type, version or id."""

    def __init__(self, rules: Collection[Rule]) -> None:
        ids = [r.rule_id for r in rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise RuleError(f"duplicate rule ids: {dupes}")
        self._rules = tuple(rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def versions(self) -> list[str]:
        return sorted({r.version for r in self._rules})

    def get(self, rule_id: str) -> Rule:
        for r in self._rules:
            if r.rule_id == rule_id:
                return r
        raise RuleError(f"unknown rule id {rule_id!r}")

    def select(
        self,
        product: Product | None = None,
        test_type: TestType | None = None,
        version: str | None = None,
        only: Collection[str] | None = None,
    ) -> list[Rule]:
        """Rules matching every given filter (in-house diagnostics pass any version)."""
        if version is not None and version not in self.versions():
            raise UnknownRuleVersionError(
                f"unknown rule version {version!r}; known: {self.versions()}"
            )
        if only is not None:
            for rule_id in only:
                self.get(rule_id)
        return [
            r
            for r in self._rules
            if (product is None or r.product is product)
            and (test_type is None or test_type in r.test_types)
            and (version is None or r.version in (version, INHOUSE))
            and (only is None or r.rule_id in only)
        ]


REGISTRY = RuleRegistry(
    [*fcrd.RULES, *fcrn.RULES, *sine.RULES, *ffr.RULES, *frr.RULES, *common.RULES, *ler.RULES]
)


def _select(
    product: Product, test_type: TestType, rule_version: str | None, only: Collection[str] | None
) -> list[Rule]:
    rules = REGISTRY.select(Product(product), TestType(test_type), rule_version, only)
    if not rules:
        raise NoRulesError(
            f"no rule for {Product(product).value} / {TestType(test_type).value}"
            f"{' / ' + rule_version if rule_version else ''}"
        )
    return rules


def judge(
    series: Series,
    product: Product,
    test_type: TestType,
    rule_version: str | None = None,
    *,
    only: Collection[str] | None = None,
    strict: bool = False,
    **params: Any,
) -> list[Verdict]:
    """Judge ``series`` with every selected rule; one Verdict per rule, in registry order.

    ``only`` restricts to the given rule ids (e.g. just the polarity rule per site).
    Rules with optional inputs ("where the data allows": LER energy, NEM flags) that are
    absent are skipped - :func:`skipped_rules` lists them with the reason for the report -
    or raise :class:`MissingParameterError` with ``strict=True`` or when named in ``only``.
    Raises :class:`NoRulesError` when nothing applies and the typed errors listed in the
    module doc when a rule cannot be evaluated.
    """
    rules = _select(product, test_type, rule_version, only)
    ctx = Context(series, Product(product), Params.from_kwargs(dict(params)))
    out: list[Verdict] = []
    for rule in rules:
        missing = rule.missing_input(ctx)
        if missing is not None:
            if strict or only is not None:
                raise MissingParameterError(missing, rule.rule_id, "optional input absent")
            continue
        out.append(rule.judge(ctx))
    return out


def judge_each(
    series: Series,
    product: Product,
    test_type: TestType,
    rule_version: str | None = None,
    **params: Any,
) -> tuple[list[Verdict], list[tuple[str, str]]]:
    """Like :func:`judge`, rule by rule: (verdicts, [(rule_id, error text)]).

    A rule that cannot be evaluated (sequence not found, sampling too coarse, a window
    outside the data, ...) is reported with its error; the others are still judged.
    Raises only when no rule applies or a parameter is unknown.
    """
    rules = _select(product, test_type, rule_version, None)
    ctx = Context(series, Product(product), Params.from_kwargs(dict(params)))
    verdicts: list[Verdict] = []
    errors: list[tuple[str, str]] = []
    for rule in rules:
        try:
            if rule.missing_input(ctx) is not None:
                continue
            verdicts.append(rule.judge(ctx))
        except (SeriesError, RuleError) as exc:
            errors.append((rule.rule_id, f"{type(exc).__name__}: {exc}"))
    return verdicts, errors


def method_lines(products: Collection[Product]) -> list[str]:
    """How the audit measures, with sources, for the report's Method (judged products)."""
    out = [
        "Conservative policy: every threshold has a source (listed per rule); 'full' is "
        "100 % of the target confirmed by a stated short mean, never a tolerance without a "
        "source; where the facts mark a figure UNCERTAIN or CONFLICT the stricter reading "
        "decides and the verdict shows the other reading's result.",
    ]
    wanted = {Product(p) for p in products}
    for module, covers in (
        (ffr, {Product.FFR}),
        (frr, {Product.AFRR, Product.MFRR}),
        (fcrn, {Product.FCR_N}),
        (fcrd, {Product.FCR_D_UP, Product.FCR_D_DOWN}),
    ):
        if wanted & covers:
            out.extend(module.METHOD)
    return out


def thresholds() -> list[tuple[str, float, str]]:
    """(module.name, value, source) of every cited figure the audit judges with.

    The product figures (``contract.products``), the rule modules' own constants and the
    sine-test figures (``analytics.freqresp``); tuples and mappings of figures are listed
    element by element (``name[i]``, ``name[key]``).
    """
    from analytics import freqresp
    from analytics.rules import base, measure, segments
    from contract import products

    out: list[tuple[str, float, str]] = []
    seen: set[int] = set()  # a figure imported elsewhere is listed once, where it is defined

    def add(label: str, value: object) -> None:
        if isinstance(value, Cited | CitedInt):
            if id(value) not in seen:
                seen.add(id(value))
                out.append((label, float(value), value.source))
        elif isinstance(value, tuple):
            for i, item in enumerate(value):
                add(f"{label}[{i}]", item)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                add(f"{label} key {key}", key)
                add(f"{label}[{key}]", item)

    modules = (products, freqresp, base, measure, segments, fcrd, fcrn, ffr, frr, ler, common, sine)
    for module in modules:
        for name, value in sorted(vars(module).items()):
            if not name.startswith("__") and not callable(value):
                add(f"{module.__name__}.{name}", value)
    add("analytics.freqresp.GridModel.k_f", freqresp.GridModel.__dataclass_fields__["k_f"].default)
    return out


def skipped_rules(
    series: Series,
    product: Product,
    test_type: TestType,
    rule_version: str | None = None,
    **params: Any,
) -> list[tuple[str, str]]:
    """(rule_id, missing input) for each rule ``judge`` skips for lack of optional data."""
    ctx = Context(series, Product(product), Params.from_kwargs(dict(params)))
    return [
        (rule.rule_id, missing)
        for rule in _select(product, test_type, rule_version, None)
        if (missing := rule.missing_input(ctx)) is not None
    ]


def required_sampling(
    product: Product, test_type: TestType, *, allow_1hz: bool = False
) -> SamplingRequirement | None:
    """The strictest sampling any rule for this product and test type needs (or None).

    FFR activations need 100 ms throughout a file (its rules check the window around the
    event themselves); operation files need >= 1 Hz (TR25 §6.2). Used by the SvK CSV
    reader to reject too coarse files up front.
    """
    if Product(product) is Product.FFR and TestType(test_type) is TestType.ACTIVATION:
        return FFR_EVENT_RATE
    if TestType(test_type) is TestType.OPERATION:
        return OPERATION_RATE  # TR25 §6.2: power, frequency and baseline at >= 1 Hz
    params = Params(allow_1hz=allow_1hz)
    needs = [
        need
        for rule in REGISTRY.select(Product(product), TestType(test_type))
        if (need := rule.sampling_for(params)) is not None
    ]
    return min(needs, key=lambda n: n.max_interval_s) if needs else None


def polarity_offenders(
    sites: Mapping[str, Series], product: Product, test_type: TestType, **params: Any
) -> list[str]:
    """Site ids whose response has the wrong sign (the polarity rule per site)."""
    rule_id = f"{rule_tag(Product(product))}.POLARITY"
    return sorted(
        site
        for site, series in sites.items()
        if not judge(series, product, test_type, None, only=[rule_id], **params)[0].passed
    )
