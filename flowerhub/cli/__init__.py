"""The `flowerhub` command: verb groups, one module each; handlers only parse and delegate.

A group module exposes ``register(subparsers)`` which adds its parser(s) and sets
``func`` (a callable taking the parsed namespace and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# One line per verb group. A module is imported only to register its arguments.
GROUP_MODULES: tuple[str, ...] = (
    "flowerhub.cli.audit",
    "flowerhub.cli.analytics",
    "flowerhub.cli.bridge",
    "flowerhub.cli.edge",
    "flowerhub.cli.broker",
    "flowerhub.cli.demo",
    "flowerhub.cli.events",
    "flowerhub.cli.streams",
    "flowerhub.cli.ui",
    "flowerhub.cli.mqtt",
    "flowerhub.cli.gateway",
)


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowerhub",
        description="Run a fleet of home batteries as one virtual power plant.",
    )
    sub = parser.add_subparsers(dest="group", metavar="GROUP")
    sub.required = True
    for name in GROUP_MODULES:
        module = importlib.import_module(name)
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.parse_args([*(argv or sys.argv[1:]), "--help"])
        return 2
    try:
        return func(args)
    except CliError as exc:
        print(f"flowerhub: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
