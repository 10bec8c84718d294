"""``flowerhub audit``: judge activations in the event log or in SvK CSV files.

flowerhub audit (--log DIR | --svk-csv FILE...) [--product P] [--test-type T] [--from T --to T]
                [--rule-version V] [--allow-1hz] [--ffr-activation-hz F]
                [--test-signal internal|external] [--t-fme S] [--json] --out DIR
flowerhub audit --list-thresholds [--json]
flowerhub audit export-svk --log DIR --activation ID --out DIR --resource NAME --area SE3

--from/--to select the activations overlapping [T, T) and read only the log inside it.
--product takes SvK's service tokens and common spellings in any case (FcrdUp, fcr-d-up,
FCR_D_UP). An FFR file whose name (Activation497) or column (ActLevel_Ffr) carries the
activation level needs no --ffr-activation-hz. Sine tests: --test-signal says how the test
frequency was applied (internal: F·F_FME with --t-fme, default 1 s, the TSO default;
external: none); without it both readings are judged and the stricter decides.
Exit codes: 0 every judged rule passed, 1 a rule failed (or an activation could not be
judged), 2 bad input (the message names file, line and column for CSV problems).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from analytics.audit.extract import HOLD_S, AuditInputError
from analytics.audit.report import ProgressBar, table_text, write_report
from analytics.audit.run import AuditOptions, AuditResult, audit_csv, audit_log
from analytics.db import ArchiveViewError
from analytics.freqresp import T_FME_DEFAULT_S
from analytics.rules import TestSignal, thresholds
from analytics.rules.base import KNOWN_VERSIONS, RuleError
from analytics.svkcsv import SvkCsvError, parse_product
from analytics.timeseries import SeriesError
from analytics.verdicts import TestType
from contract.enums import Product
from contract.products import MARKET_PRODUCTS, svk_service
from flowerhub.cli import CliError


def _time(text: str) -> int:
    """ISO-8601 (naive = UTC) -> microseconds since the epoch."""
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from None
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(UTC).replace(tzinfo=None)
    return int(np.datetime64(stamp, "us").astype(np.int64))


def _product(text: str) -> Product:
    try:
        return parse_product(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _ui_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(
            f"not the address of flowerhub ui (http(s)://host:port/): {text!r}"
        )
    return text


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="judge activations and tests against SvK requirements (event log or SvK CSV)",
        description="Judge every activation and test in the event log (--log) or in SvK "
        "prequalification CSV files (--svk-csv) with the same rules; write verdicts.json, "
        "verdicts.csv, report.md, report.html and plots into --out.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--log", type=Path, metavar="DIR", help="event-log archive directory")
    source.add_argument("--svk-csv", type=Path, nargs="+", metavar="FILE", help="SvK CSV files")
    parser.add_argument(
        "--product",
        type=_product,
        metavar="P",
        help="only this product: "
        + ", ".join(f"{p.value}/{svk_service(p)}" for p in MARKET_PRODUCTS)
        + " (any case, - or _)",
    )
    parser.add_argument(
        "--test-type",
        choices=[t.value for t in TestType],
        help="CSV: override the file name's test type",
    )
    parser.add_argument(
        "--from", dest="since", type=_time, metavar="T", help="start (ISO-8601, UTC)"
    )
    parser.add_argument("--to", dest="until", type=_time, metavar="T", help="end (ISO-8601, UTC)")
    parser.add_argument("--rule-version", choices=KNOWN_VERSIONS, help="only this rule version")
    parser.add_argument(
        "--allow-1hz", action="store_true", help="the TSO allowed >= 1 Hz test logging"
    )
    parser.add_argument(
        "--ffr-activation-hz", type=float, metavar="HZ", help="FFR option (49.7, 49.6, 49.5)"
    )
    parser.add_argument(
        "--test-signal",
        choices=[s.value for s in TestSignal if s is not TestSignal.UNKNOWN],
        help="sine tests: internal (F·F_FME) or external generator; default: both, stricter "
        "decides",
    )
    parser.add_argument(
        "--t-fme",
        type=_positive,
        default=T_FME_DEFAULT_S,
        metavar="S",
        help=f"sine tests, internal signal: T_FME (default {T_FME_DEFAULT_S:g} s, TSO default)",
    )
    parser.add_argument(
        "--interval", type=float, metavar="S", help="log: fleet series grid (default: telemetry)"
    )
    parser.add_argument(
        "--hold",
        type=float,
        default=HOLD_S,
        metavar="S",
        help=f"log: a site's last sample holds this long in fleet power (default {HOLD_S:g})",
    )
    parser.add_argument(
        "--prefix", default="", metavar="P", help="log: audit the topics under this prefix"
    )
    parser.add_argument("--json", action="store_true", help="print the verdict table as JSON")
    parser.add_argument(
        "--list-thresholds",
        action="store_true",
        help="print every figure the rules judge with, and its source, then exit",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument(
        "--ui-url",
        type=_ui_url,
        metavar="URL",
        help="the operations view (flowerhub ui) the report's offenders link to, e.g. "
        "http://127.0.0.1:8765/ (default: links work where flowerhub ui serves the report)",
    )
    parser.add_argument("--out", type=Path, metavar="DIR", help="output directory (required)")
    parser.set_defaults(func=cmd_audit)
    verbs = parser.add_subparsers(dest="audit_verb", metavar="[export-svk]")
    export = verbs.add_parser(
        "export-svk", help="write one activation of the log as an SvK CSV file"
    )
    export.add_argument("--log", dest="export_log", required=True, type=Path, metavar="DIR")
    export.add_argument("--activation", required=True, help="activation id")
    export.add_argument("--out", dest="export_out", required=True, type=Path, metavar="DIR")
    export.add_argument("--resource", required=True, help="resource name in the file name")
    export.add_argument("--area", required=True, help="bidding zone, e.g. SE3")
    export.add_argument(
        "--interval", dest="export_interval", type=float, metavar="S", help="grid in s"
    )
    export.add_argument("--prefix", dest="export_prefix", default="", metavar="P")
    export.add_argument(
        "--hold", dest="export_hold", type=float, default=HOLD_S, metavar="S", help="sample hold"
    )
    export.set_defaults(func=cmd_export)


def options(args: argparse.Namespace) -> AuditOptions:
    return AuditOptions(
        product=args.product,
        since_us=args.since,
        until_us=args.until,
        rule_version=args.rule_version,
        allow_1hz=args.allow_1hz,
        ffr_activation_hz=args.ffr_activation_hz,
        interval_s=args.interval,
        topic_prefix=args.prefix,
        hold_s=args.hold,
        test_signal=TestSignal.UNKNOWN
        if args.test_signal is None
        else TestSignal(args.test_signal),
        t_fme_s=args.t_fme,
    )


def run_audit(args: argparse.Namespace) -> AuditResult:
    """The audit the arguments ask for; bad input raises :class:`CliError`."""
    if args.log is None and not args.svk_csv:
        raise CliError("audit needs --log DIR or --svk-csv FILE...")
    if args.out is None:
        raise CliError("audit needs --out DIR")
    if args.since is not None and args.until is not None and args.until <= args.since:
        raise CliError("--to must be after --from")
    progress = ProgressBar(enabled=not args.no_progress)
    opts = options(args)
    try:
        if args.log is not None:
            return audit_log(args.log, opts, progress)
        missing = [str(p) for p in args.svk_csv if not p.is_file()]
        if missing:
            raise CliError(f"no such file: {', '.join(missing)}")
        test_type = None if args.test_type is None else TestType(args.test_type)
        return audit_csv(args.svk_csv, opts, test_type=test_type, progress=progress)
    except SvkCsvError as exc:
        raise CliError(str(exc)) from exc
    except (AuditInputError, ArchiveViewError) as exc:
        raise CliError(str(exc)) from exc


def cmd_audit(args: argparse.Namespace) -> int:
    if args.list_thresholds:
        listed = thresholds()
        if args.json:
            print(
                json.dumps([{"name": n, "value": v, "source": s} for n, v, s in listed], indent=2)
            )
        else:
            for name, value, source in listed:
                print(f"{name} = {value:g}  # {source}")
        return 0
    result = run_audit(args)
    write_report(result, args.out, ui_url=args.ui_url)
    rows = result.rows()
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
    else:
        print(table_text(rows) if rows else "no activation or test found")
        offenders = [o for r in result.results for o in r.offenders]
        if offenders:
            print(f"\n{len(offenders)} offender row(s); see {args.out / 'report.md'}")
    return result.exit_code()


def cmd_export(args: argparse.Namespace) -> int:
    from analytics.audit.export import export_activation

    try:
        path = export_activation(
            args.export_log,
            args.activation,
            args.export_out,
            resource=args.resource,
            area=args.area,
            interval_s=args.export_interval,
            topic_prefix=args.export_prefix,
            hold_s=args.export_hold,
        )
    except (AuditInputError, ArchiveViewError, SvkCsvError, SeriesError, RuleError) as exc:
        raise CliError(str(exc)) from exc
    print(path)
    sys.stdout.flush()
    return 0
