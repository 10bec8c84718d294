"""Reading a service's ``/metrics`` the way Prometheus does, for tests and benchmarks.

:func:`scrape` fetches the text exposition and parses it with prometheus_client's own
parser (``text_string_to_metric_families``): a page the parser refuses fails the caller.
:class:`Scrape` answers what a test asks: is a family there, the value of one series.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass(frozen=True)
class Scrape:
    """One parsed page: the families by name, with their samples."""

    text: str
    families: Mapping[str, list[Sample]]
    types: Mapping[str, str]

    def samples(self, name: str, /, **labels: str) -> list[Sample]:
        """Samples named ``name`` (a family's sample name: ``_total``, ``_count``...) whose
        labels include ``labels``."""
        family = self._family_of(name)
        return [
            s
            for s in self.families.get(family, [])
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def value(self, name: str, /, **labels: str) -> float:
        """The sum of the matching samples (0.0 when there are none)."""
        return float(sum(s.value for s in self.samples(name, **labels)))

    def has(self, name: str) -> bool:
        """Whether the family ``name`` (without ``_total``) is on the page."""
        return name in self.families

    def _family_of(self, sample: str) -> str:
        if sample in self.families:
            return sample
        for suffix in ("_total", "_count", "_sum", "_bucket", "_created", "_info"):
            base = sample.removesuffix(suffix)
            if base != sample and base in self.families:
                return base
        return sample


def parse(text: str) -> Scrape:
    families: dict[str, list[Sample]] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = list(family.samples)
        types[family.name] = family.type
    return Scrape(text, families, types)


def scrape(url: str, timeout_s: float = 10.0) -> Scrape:
    """GET ``url`` (a loopback ``/metrics``) and parse it."""
    if not url.startswith("http://"):
        raise ValueError(f"not an http URL: {url!r}")
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310  # checked
        assert response.status == 200, response.status  # noqa: S101  # test support
        content_type = response.headers.get("Content-Type", "")
        assert content_type.startswith("text/plain"), content_type  # noqa: S101
        return parse(response.read().decode("utf-8"))
