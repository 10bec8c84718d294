"""Run every benchmark module (or those named on the command line) and write bench-results.json."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

import bench
from bench import BenchResult


def discover() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("only", nargs="*", help="bench module names (default: all)")
    parser.add_argument("--out", default="bench-results.json")
    args = parser.parse_args(argv)
    names = args.only or discover()
    results: list[BenchResult] = []
    failed: list[str] = []
    for name in names:
        module = importlib.import_module(f"bench.{name.removeprefix('bench.')}")
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            got: list[BenchResult] = module.run()
        except Exception as exc:  # a failing bench is reported, the others still run
            print(f"   FAILED: {type(exc).__name__}: {exc}", flush=True)
            failed.append(name)
            continue
        for r in got:
            ratio = "n/a" if r.ratio is None else f"{r.ratio:.3f}x"
            base = "n/a" if r.baseline is None else f"{r.baseline:,.3f}"
            print(
                f"   {r.name}: {r.value:,.3f} {r.unit} "
                f"(baseline {base}, ratio {ratio}; goal {r.goal})"
                + (f" [{r.note}]" if r.note else ""),
                flush=True,
            )
        results.extend(got)
        print(f"   ({time.perf_counter() - started:.1f} s)", flush=True)
    Path(args.out).write_text(json.dumps([r.as_json() for r in results], indent=2) + "\n")
    print(f"wrote {args.out} ({len(results)} figures)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
