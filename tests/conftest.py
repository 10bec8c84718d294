"""Session fixtures shared by every test directory.

``kafka_bootstrap`` gives integration tests a real broker, never a skip:

1. ``KAFKA_BOOTSTRAP_SERVERS`` when set (an existing cluster; nothing is started);
2. else an ``apache/kafka`` container via testcontainers when a Docker engine answers;
3. else the project's own local KRaft broker (flowerhub.broker) in a temp dir, stopped at
   the end of the session.

``kafka`` is the same broker as connection settings (``contract.kafka``): every client a test
makes comes from the project's factories with them.

Every broker used here has (or should have) topic auto-creation off, so tests pre-create
their topics with the ``create_topics`` fixture (or ``contract.kafka.admin``).

Every test is checked for leaks (``no_leaks``, autouse; the checks live in ``leakcheck``): a
test fails when it leaves behind an asyncio task, a thread, a child process, a socket or an
open file it started. What session- and module-scoped fixtures hold (the session broker, its
sockets and processes) exists before the tests that use it, so it is in every test's
"before" picture; the session's own leaks are checked once, at its end. The one allowance is
a fixture's shared service (``leakcheck.shared_service``: a bridge fleet, a 3-broker
cluster): while it runs, its tests are checked for tasks only, and it is checked as a whole
when it stops.
"""

from __future__ import annotations

import gc
import os
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

import pytest

from contract.kafka.admin import create_named_topics_sync, wait_for_brokers
from contract.kafka.settings import KafkaSettings, settings_for
from tests import leakcheck

KAFKA_IMAGE = os.environ.get("FLOWERHUB_KAFKA_IMAGE", "apache/kafka:4.4.0")


def docker_engine_answers(timeout: float = 2.0) -> bool:
    """True when a Docker engine answers a ping quickly; any failure means no Docker."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    # docker-py leaks its socket when the engine does not answer; collect it here, where
    # the ResourceWarning is expected, rather than in some later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker

            client = docker.from_env(timeout=int(timeout))
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:  # no socket, no permission, no daemon, no package: all mean "no"
            return False
        finally:
            gc.collect()


@contextmanager
def _container_broker() -> Iterator[str]:
    """A single-node KRaft apache/kafka container advertised on a free host port."""
    from testcontainers.core.container import DockerContainer

    from flowerhub.broker.launcher import free_ports

    (port,) = free_ports(1)
    container = (
        DockerContainer(KAFKA_IMAGE)
        .with_bind_ports(9092, port)
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env("KAFKA_LISTENERS", "PLAINTEXT://0.0.0.0:9092,CONTROLLER://localhost:9093")
        .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://127.0.0.1:{port}")
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env(
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        )
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        .with_env("KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS", "1000")
    )
    with container:
        bootstrap = f"127.0.0.1:{port}"
        wait_for_brokers(settings_for(bootstrap), expected=1, timeout_s=90.0)
        yield bootstrap


def _broker_source(tmp: Path) -> AbstractContextManager[str]:
    if docker_engine_answers():
        return _container_broker()

    @contextmanager
    def local() -> Iterator[str]:
        from flowerhub.broker.launcher import local_cluster

        with local_cluster(nodes=1, data_dir=tmp) as state:
            yield state.bootstrap

    return local()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker for the whole session (see module doc)."""
    preset = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if preset:
        yield preset
        return
    with _broker_source(tmp_path_factory.mktemp("kafka")) as bootstrap:
        yield bootstrap


class TopicCreator(Protocol):
    def __call__(
        self,
        names: list[str],
        partitions: int = 1,
        *,
        replication_factor: int | None = None,
        configs: Mapping[str, str] | None = None,
    ) -> list[str]: ...


@pytest.fixture(scope="session")
def kafka(kafka_bootstrap: str) -> KafkaSettings:
    """The session's broker as connection settings (PLAINTEXT; the environment not read)."""
    return settings_for(kafka_bootstrap)


@pytest.fixture
def create_topics(kafka: KafkaSettings) -> TopicCreator:
    """``create_topics(names, partitions=1, *, replication_factor=None, configs=None)``.

    Creates the topics on the session's broker (existing ones are fine), returns ``names``.
    """

    def create(
        names: list[str],
        partitions: int = 1,
        *,
        replication_factor: int | None = None,
        configs: Mapping[str, str] | None = None,
    ) -> list[str]:
        create_named_topics_sync(
            kafka,
            names,
            partitions,
            replication_factor=replication_factor,
            configs=configs,
        )
        return list(names)

    return create


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``unique_name("events")`` -> ``"<test name>-events-<8 hex>"``: topics and groups that
    never collide on the session's shared broker."""
    base = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:60]

    def make(suffix: str) -> str:
        return f"{base}-{suffix}-{uuid.uuid4().hex[:8]}"

    return make


# ---------------------------------------------------------------- order
# The longest files first: the demo's two real-time runs (about 5 minutes), then the broker
# outage. `make test` runs the suite on pytest-xdist workers, one test file per worker at a
# time (--dist loadfile, --no-loadscope-reorder), so these overlap the rest of the suite
# instead of running alone at its end. A serial run just starts with them.
RUN_FIRST = ("tests/integration/test_demo.py", "tests/integration/test_bridge_outage.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return RUN_FIRST.index(path) if path in RUN_FIRST else len(RUN_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order


# ---------------------------------------------------------------- leak checks (leakcheck.py)
def pytest_configure(config: pytest.Config) -> None:
    leakcheck.TASKS.install()


_SESSION_LEAKS: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def no_session_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Whatever session- and module-scoped fixtures started is gone when the session ends.

    Set up before every other fixture and torn down after them all, as part of the last
    test's teardown: a leak is an error there (on an xdist worker too). When the run was cut
    short (-x, --maxfail) the teardown comes later, outside any test: the leak is then
    reported at the end and the run fails.
    """
    before = leakcheck.Picture.take()
    yield
    leaks = leakcheck.find_leaks(before, None)
    leakcheck.stop_processes(leaks.processes)
    if not leaks:
        return
    report = leaks.report("the test session's fixtures")
    if request.session.shouldstop or request.session.shouldfail:
        _SESSION_LEAKS.append(report)
    else:
        pytest.fail(report, pytrace=False)


@pytest.hookimpl(trylast=True)  # after pytest's own sessionfinish tore the fixtures down
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SESSION_LEAKS and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for report in _SESSION_LEAKS:
        terminalreporter.section("leaks", sep="=", red=True, bold=True)
        terminalreporter.line(report, red=True)


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves an asyncio task, thread, child process, socket or file behind.

    What was there before the test (session- and module-scoped fixtures: the session broker,
    its sockets and processes) is allowed; nothing else is. While a fixture's shared service
    runs (``leakcheck.shared_service``) only tasks are checked per test. Leaked child
    processes are stopped once reported.
    """
    before = leakcheck.Picture.take()
    leakcheck.TASKS.reset()
    yield
    if leakcheck.shared_services():  # checked as a whole when the service stops
        leaks = leakcheck.Leaks(tasks=leakcheck.TASKS.leaked())
    else:
        leaks = leakcheck.find_leaks(before, leakcheck.TASKS)
    leakcheck.TASKS.reset()
    leakcheck.stop_processes(leaks.processes)
    if leaks:
        pytest.fail(leaks.report(request.node.nodeid), pytrace=False)
