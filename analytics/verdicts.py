"""Verdict rows: one judged requirement, shared by the event-log audit and the SvK CSV audit.

A :class:`Verdict` is what every rule returns. It carries the rule id, the version of the
requirement document the rule implements, the measured value against its threshold(s), and
whether it passed. ``comparison`` says how ``measured`` was compared:

* ``">="``: pass when ``measured >= threshold``;
* ``"<="``: pass when ``measured <= threshold``;
* ``"between"``: pass when ``threshold <= measured <= threshold_high``.

:func:`passes` applies the same comparison to another threshold (the other reading of an
uncertain figure, shown beside the verdict: ``other_reading``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Literal

from contract.enums import Product

Comparison = Literal[">=", "<=", "between"]


class TestType(StrEnum):
    """What a series records. Values are the canonical SvK file-name ``TestType`` tokens."""

    __test__ = False  # not a pytest test class despite the name

    STEP = "Step"  # FCR-N step sequence (TR25 Table 3)
    RAMP = "Ramp"  # FCR-D dynamic fast-ramp sequence (TR25 Table 4)
    SINE = "Sine"  # one sine-test period (file name token carries the period: Sine40)
    OPERATION = "Operation"  # normal operation
    ACTIVATION = "Activation"  # one activation (FFR frequency event, aFRR/mFRR order)


@dataclass(frozen=True)
class Verdict:
    """One judged requirement. ``measured``/``threshold`` are in ``unit``."""

    rule_id: str
    rule_version: str
    product: Product
    requirement: str
    reference: str
    measured: float
    threshold: float
    unit: str
    comparison: Comparison
    passed: bool
    detail: str = ""
    threshold_high: float | None = None
    other_reading: str = ""
    """Where the facts mark a figure UNCERTAIN or CONFLICT the stricter reading decides
    ``passed``; this is the other reading's result, shown beside it."""

    @classmethod
    def compare(
        cls,
        *,
        rule_id: str,
        rule_version: str,
        product: Product,
        requirement: str,
        reference: str,
        measured: float,
        threshold: float,
        unit: str,
        comparison: Comparison,
        detail: str = "",
        threshold_high: float | None = None,
        other_reading: str = "",
    ) -> Verdict:
        """Build a verdict and decide ``passed`` from ``comparison`` (NaN never passes)."""
        if comparison == "between" and threshold_high is None:
            raise ValueError(f"{rule_id}: comparison 'between' needs threshold_high")
        passed = passes(measured, comparison, threshold, threshold_high)
        return cls(
            rule_id=rule_id,
            rule_version=rule_version,
            product=product,
            requirement=requirement,
            reference=reference,
            measured=measured,
            threshold=threshold,
            unit=unit,
            comparison=comparison,
            passed=passed,
            detail=detail,
            threshold_high=threshold_high,
            other_reading=other_reading,
        )

    def as_dict(self) -> dict[str, object]:
        """JSON-ready mapping (product as its string value; NaN as None)."""
        data = asdict(self)
        data["product"] = self.product.value
        for key in ("measured", "threshold", "threshold_high"):
            value = data[key]
            if isinstance(value, float) and not math.isfinite(value):
                data[key] = None
        return data


#: Float rounding, not a tolerance: a value within a part per 10^12 of its threshold is at it
#: (a mean of an exact plateau at the threshold may come out 6e-15 under it).
ROUNDING = 1e-12


def passes(
    measured: float, comparison: Comparison, threshold: float, threshold_high: float | None = None
) -> bool:
    """Whether ``measured`` passes ``threshold`` the way ``comparison`` says (NaN never)."""
    if math.isnan(measured):
        return False

    def at(limit: float) -> bool:
        return abs(measured - limit) <= ROUNDING * max(abs(limit), abs(measured))

    if comparison == ">=":
        return measured >= threshold or at(threshold)
    if comparison == "<=":
        return measured <= threshold or at(threshold)
    if threshold_high is None:
        raise ValueError("comparison 'between' needs threshold_high")
    low_ok = measured >= threshold or at(threshold)
    return low_ok and (measured <= threshold_high or at(threshold_high))


def verdicts_to_json(verdicts: list[Verdict]) -> str:
    """The verdict table as a JSON array (what ``flowerhub audit --json`` prints)."""
    return json.dumps([v.as_dict() for v in verdicts], indent=2, sort_keys=True)
