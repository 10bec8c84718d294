"""The Kafka connection of every CLI verb: the same flags, the same resolution.

``add_connection(parser)`` adds the flags of :mod:`contract.kafka.cliargs`; ``connection(args)``
resolves flags, a config file's section, the environment and, when none of them names the
bootstrap servers, the running local broker of ``flowerhub broker start`` (its SASL_SSL
listener when it has TLS), into settings, or a :class:`~flowerhub.cli.CliError`.
"""

from __future__ import annotations

import argparse
from typing import Any, TypeVar

from contract.kafka.cliargs import (
    KafkaOptions,
    add_kafka_arguments,
    options_from_args,
    resolve_as,
)
from contract.kafka.settings import KafkaSettings, KafkaSettingsError
from flowerhub.cli import CliError

S = TypeVar("S", bound=KafkaSettings)


def add_connection(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    return add_kafka_arguments(parser)


def local_broker() -> KafkaOptions | None:
    """How to reach a running local broker started by `flowerhub broker start`, if any."""
    from flowerhub.broker.launcher import kafka_home
    from flowerhub.broker.state import (
        STATE_FILE,
        StateFileError,
        is_our_node,
        kafka_options,
        read_state,
    )

    run = kafka_home() / "run"
    for state_file in sorted(run.glob(f"*/{STATE_FILE}")) if run.is_dir() else []:
        try:
            state = read_state(state_file.parent)
        except StateFileError:
            continue
        if state is not None and any(is_our_node(n) for n in state.nodes):
            return kafka_options(state)
    return None


def connection(args: argparse.Namespace, *, base: KafkaOptions | None = None) -> KafkaSettings:
    """Settings from the flags in ``args`` over ``base`` (a config file's ``kafka:``
    section), the environment and the local broker; CliError when they cannot work."""
    return connection_as(KafkaSettings, args, base=base)


def connection_as(
    cls: type[S], args: argparse.Namespace, *, base: KafkaOptions | None = None, **extra: Any
) -> S:
    """:func:`connection` into a subclass of the settings (``extra``: its own fields)."""
    try:
        return resolve_as(cls, options_from_args(args), base, fallback=local_broker, **extra)
    except KafkaSettingsError as exc:
        raise CliError(str(exc)) from None
