"""Benchmarks: `make bench` (python -m bench) runs every bench module and writes bench-results.json.

A bench module is ``bench/bench_<name>.py`` exposing ``run() -> list[BenchResult]``. Every
figure is printed as a ratio against a baseline measured in the same run, because the
machine is shared and noisy: absolute numbers alone would mean little.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class BenchResult:
    """One figure: ``value`` against ``baseline`` (same unit), ``ratio`` = value / baseline.

    ``goal`` states the target in words, e.g. ">= 0.9x and >= 300000 events/s".
    ``higher_is_better`` tells how to read the ratio.
    """

    name: str
    value: float
    unit: str
    baseline: float | None
    goal: str
    higher_is_better: bool = True
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["ratio"] = None if self.ratio is None else round(self.ratio, 4)
        return data
