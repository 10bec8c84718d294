"""SvK CSV vocabulary: file-name tokens, header names and units (TR25 §6.2, Table 18).

File name: ``[Resource]_[Service]_[TestType]_[Area]_[Timezone]_[Interval]_[SamplingRate]_
[Date].csv`` with Service in {Fcrn, FcrdUp, FcrdDo}, Interval ``YYYYMMDDThhmm-YYYYMMDDThhmm``,
SamplingRate in ms (``100ms``) and Date ``YYYYMMDD``. The resource may contain underscores
(the other seven fields are taken from the right).

Extensions (FlowerHub; SvK lists only FCR services): Service ``Ffr``, ``Afrr``, ``Mfrr``;
TestType ``Activation`` (one FFR event or aFRR/mFRR order); column ``ReqAcPow`` (requested
activation in MW, + = up/injection) for aFRR/mFRR. TestType tokens: ``Step`` (FCR-N step),
``Ramp`` (FCR-D fast ramp; ``FastRamp`` is read as an alias), ``Sine<T>`` (one sine period
T in s; column headers then carry T, e.g. ``InsAcPow40``), ``Operation``. An FFR file may
carry its activation level (the provider's option): in the test type as ``Activation497``
(tenths of Hz: 49.7 Hz), or as the column ``ActLevel_Ffr`` (Hz, one value throughout).

:func:`parse_product` reads a product from SvK's service tokens and common spellings,
case-insensitively (``FcrdUp``, ``fcr-d-up``, ``FCR_D_UP``, ``fcrd_do``, ``FCR-D down``).

Unknown columns are errors unless in :data:`SIGNAL_UNITS` (SvK's signal list with per-product
suffixes, plus the extension above): nothing is dropped or guessed silently. A header may
carry its unit in brackets (``InsAcPow [MW]``); any unit other than the listed one is an
error (the format is MW, Hz, %, min).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path

from analytics.svkcsv.errors import FileNameError
from analytics.verdicts import TestType
from contract.enums import Product
from contract.products import FFR_OPTIONS, MARKET_PRODUCTS, svk_service

SERVICE_TOKENS: dict[Product, str] = {p: svk_service(p) for p in MARKET_PRODUCTS}
PRODUCT_BY_SERVICE = {v: k for k, v in SERVICE_TOKENS.items()}
TEST_TYPE_ALIASES = {"FastRamp": TestType.RAMP}

_FCR = ("Fcrn", "FcrdUp", "FcrdDo")
_ALL = tuple(SERVICE_TOKENS.values())

# Header -> unit. Series signals first (in writer order), then the other listed signals.
SIGNAL_UNITS: dict[str, str] = {
    "DateTime": "",
    "InsAcPow": "MW",
    "GridFreq": "Hz",
    "ApplFreqSig": "Hz",
    "CalcBaseline": "MW",
    **{f"Cap_{s}": "MW" for s in _ALL},
    "ReqAcPow": "MW",
    "ActLevel_Ffr": "Hz",
    "SOC": "%",
    **{f"ContMode_{s}": "id" for s in _ALL},
    **{f"ContStatus_{s}": "0/1" for s in _ALL},
    **{f"RegStr_{s}": "MW/Hz" for s in _FCR},
    "Pmin": "MW",
    "Pmax": "MW",
    **{f"Activated_{s}": "MW" for s in _ALL},
    **{f"ResSize_{s}": "min" for s in _FCR},
    **{f"NEM_MW_{s}": "MW" for s in _FCR},
    **{f"NEM_{s}": "0/1" for s in _FCR},
    **{f"AEM_{s}": "0/1" for s in _FCR},
    "ContOutSig": "",
    "ContSetP": "MW",
}

_NAME_RE = re.compile(
    r"^(?P<resource>.+)_(?P<service>[A-Za-z]+)_(?P<test>[A-Za-z]+\d*)_(?P<area>[A-Z]{2}\d?)_"
    r"(?P<tz>[A-Za-z0-9+-]+)_(?P<i0>\d{8}T\d{4})-(?P<i1>\d{8}T\d{4})_(?P<rate>\d+)ms_"
    r"(?P<date>\d{8})\.csv$"
)


@dataclass(frozen=True)
class SvkFileName:
    """The fields of an SvK CSV file name."""

    resource: str
    product: Product
    test_type: TestType
    area: str
    timezone: str
    interval_start: datetime
    interval_end: datetime
    sampling_ms: int
    date: date
    period_s: int | None = None  # sine tests only
    activation_hz: float | None = None  # FFR activations that name their level

    @property
    def test_token(self) -> str:
        if self.test_type is TestType.SINE:
            return f"Sine{self.period_s}"
        if self.activation_hz is not None:
            return f"{self.test_type.value}{round(self.activation_hz * 10)}"
        return self.test_type.value

    @property
    def header_suffix(self) -> str:
        """Sine files carry the period in every header (``InsAcPow40``)."""
        return str(self.period_s) if self.test_type is TestType.SINE else ""

    def render(self) -> str:
        fmt = "%Y%m%dT%H%M"
        return (
            f"{self.resource}_{SERVICE_TOKENS[self.product]}_{self.test_token}_{self.area}_"
            f"{self.timezone}_{self.interval_start.strftime(fmt)}-"
            f"{self.interval_end.strftime(fmt)}_{self.sampling_ms}ms_"
            f"{self.date.strftime('%Y%m%d')}.csv"
        )

    def with_overrides(self, product: Product | None, test_type: TestType | None) -> SvkFileName:
        return replace(
            self,
            product=self.product if product is None else product,
            test_type=self.test_type if test_type is None else test_type,
        )

    @classmethod
    def parse(cls, path: str | Path) -> SvkFileName:
        p = Path(path)
        m = _NAME_RE.match(p.name)
        if m is None:
            raise FileNameError(
                p,
                "file name is not [Resource]_[Service]_[TestType]_[Area]_[Timezone]_"
                "[YYYYMMDDThhmm-YYYYMMDDThhmm]_[N]ms_[YYYYMMDD].csv",
            )
        service = m["service"]
        if service not in PRODUCT_BY_SERVICE:
            raise FileNameError(
                p, f"unknown service {service!r}; known: {sorted(PRODUCT_BY_SERVICE)}"
            )
        test_type, period, level = parse_test_token(p, m["test"])
        if level is not None and PRODUCT_BY_SERVICE[service] is not Product.FFR:
            raise FileNameError(p, f"an activation level ({m['test']}) is for FFR files only")
        try:
            i0 = datetime.strptime(m["i0"], "%Y%m%dT%H%M")
            i1 = datetime.strptime(m["i1"], "%Y%m%dT%H%M")
            day = datetime.strptime(m["date"], "%Y%m%d").date()
        except ValueError as exc:
            raise FileNameError(p, f"bad date in file name: {exc}") from exc
        if i1 < i0:
            raise FileNameError(p, "interval ends before it starts")
        rate = int(m["rate"])
        if rate <= 0:
            raise FileNameError(p, "sampling rate must be > 0 ms")
        return cls(
            resource=m["resource"],
            product=PRODUCT_BY_SERVICE[service],
            test_type=test_type,
            area=m["area"],
            timezone=m["tz"],
            interval_start=i0,
            interval_end=i1,
            sampling_ms=rate,
            date=day,
            period_s=period,
            activation_hz=level,
        )


def parse_test_token(path: str | Path, token: str) -> tuple[TestType, int | None, float | None]:
    """(test type, sine period, FFR level): ``Sine40`` -> (SINE, 40, None); ``Activation497``
    -> (ACTIVATION, None, 49.7); ``Ramp``/``FastRamp`` -> RAMP; error for anything else."""
    m = re.fullmatch(r"Sine(\d+)", token)
    if m:
        return TestType.SINE, int(m[1]), None
    m = re.fullmatch(r"Activation(\d+)", token)
    if m:
        level = int(m[1]) / 10
        if not any(abs(level - hz) < 1e-6 for hz in FFR_OPTIONS):
            options = ", ".join(f"Activation{round(hz * 10)}" for hz in FFR_OPTIONS)
            raise FileNameError(
                path, f"{token}: {level:g} Hz is not an FFR activation level; use {options}"
            )
        return TestType.ACTIVATION, None, level
    if token in TEST_TYPE_ALIASES:
        return TEST_TYPE_ALIASES[token], None, None
    try:
        test_type = TestType(token)
    except ValueError:
        known = [t.value for t in TestType if t is not TestType.SINE]
        raise FileNameError(
            path, f"unknown test type {token!r}; known: {known}, Sine<period>, FastRamp"
        ) from None
    if test_type is TestType.SINE:
        raise FileNameError(path, "a sine test type needs its period, e.g. Sine40")
    return test_type, None, None


# Spellings of each product, compared after lower-casing and dropping everything but
# letters: SvK's service tokens (Fcrn, FcrdUp, FcrdDo), our enum values and common forms.
_PRODUCT_SPELLINGS: dict[str, Product] = {
    "fcrn": Product.FCR_N,
    "fcrdup": Product.FCR_D_UP,
    "fcrdupp": Product.FCR_D_UP,
    "fcrddo": Product.FCR_D_DOWN,
    "fcrddown": Product.FCR_D_DOWN,
    "fcrdned": Product.FCR_D_DOWN,
    "ffr": Product.FFR,
    "afrr": Product.AFRR,
    "mfrr": Product.MFRR,
}


def parse_product(text: str) -> Product:
    """A product from SvK's tokens or a common spelling, any case (module doc)."""
    key = re.sub(r"[^a-z]", "", text.lower())
    product = _PRODUCT_SPELLINGS.get(key)
    if product is None:
        known = ", ".join(f"{p.value} ({svk_service(p)})" for p in MARKET_PRODUCTS)
        raise ValueError(f"unknown product {text!r}; known: {known} (any case, - or _)")
    return product
