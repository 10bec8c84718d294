"""``flowerhub ui``: the live operations view (Fleet, Sites, Site, Activations) in a browser.

flowerhub ui [connection flags] [--prefix P] [--host 127.0.0.1] [--port 8765] [--reports DIR ...]
flowerhub ui --archive DIR [--reports DIR ...]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from contract.kafka.cliargs import options_from_args
from flowerhub.cli import CliError
from flowerhub.cli.kafka import add_connection, connection

if TYPE_CHECKING:
    from flowerhub.ui.auth import Access

READY = "flowerhub ui: serving"  # the line a launcher waits for (then the URL)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ui",
        help="serve the live operations view (fleet, sites, one site, activations)",
        description="A read-only web UI fed live from the Kafka topics (or from an archive), "
        "pushed to the page with server-sent events. Binds 127.0.0.1 by default; any other "
        "address needs a token or basic auth (from a file or the environment, never the "
        "command line).",
    )
    parser.add_argument(
        "--archive", type=Path, help="show a finished run from its archive (no Kafka)"
    )
    parser.add_argument("--prefix", default="", help="topic-table prefix, e.g. 'demo-<run>.'")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    parser.add_argument(
        "--reports",
        type=Path,
        action="append",
        default=[],
        help="audit report directory to browse (repeatable; default with --archive: the "
        "archive's parent directory)",
    )
    parser.add_argument(
        "--window", type=int, default=900, help="seconds of history the charts show (900)"
    )
    parser.add_argument(
        "--lookback",
        type=float,
        default=86_400.0,
        help="seconds of activations, verdicts and command results read at start (86400)",
    )
    parser.add_argument(
        "--token-file", type=Path, help="file holding the access token (or FLOWERHUB_UI_TOKEN)"
    )
    parser.add_argument(
        "--basic-auth-file",
        type=Path,
        help="file holding 'user:password' for basic auth (or FLOWERHUB_UI_BASIC_AUTH)",
    )
    parser.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    parser.add_argument("--log-level", default="WARNING", help="logging level (WARNING)")
    add_connection(parser)
    parser.set_defaults(func=cmd_ui)


def _secret(path: Path | None, env: str, what: str) -> str | None:
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read the {what} file {path}: {exc}") from exc
        if not text:
            raise CliError(f"the {what} file {path} is empty")
        return text
    value = os.environ.get(env, "").strip()
    return value or None


def access_from(args: argparse.Namespace) -> Access:
    from flowerhub.ui.auth import BASIC_ENV, TOKEN_ENV, Access, AuthConfigError, parse_basic

    token = _secret(args.token_file, TOKEN_ENV, "token")
    basic = _secret(args.basic_auth_file, BASIC_ENV, "basic-auth")
    try:
        user, password = parse_basic(basic, "basic auth") if basic else (None, None)
        return Access(token=token, basic_user=user, basic_password=password)
    except AuthConfigError as exc:
        raise CliError(str(exc)) from exc


def cmd_ui(args: argparse.Namespace) -> int:
    from flowerhub.ui.run import UiConfig, UiError, serve

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    access = access_from(args)
    kafka = None
    if args.archive is None:
        kafka = connection(args)
    elif options_from_args(args).given():
        raise CliError("--archive reads no Kafka: drop the connection flags")
    try:
        config = UiConfig(
            host=args.host,
            port=args.port,
            kafka=kafka,
            prefix=args.prefix,
            archive=args.archive,
            reports=tuple(args.reports),
            window_s=args.window,
            lookback_s=args.lookback,
            access=access,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
        )
    except UiError as exc:
        raise CliError(str(exc)) from exc

    def ready(url: str) -> None:
        print(f"{READY} {url} ({'archive' if args.archive else 'live'})", flush=True)

    def progress(message: str) -> None:
        print(f"flowerhub ui: {message}", file=sys.stderr, flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(config, stop, ready=ready, progress=progress)

    try:
        asyncio.run(main())
    except UiError as exc:
        raise CliError(str(exc)) from exc
    return 0
