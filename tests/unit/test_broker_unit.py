"""flowerhub.broker without a broker: cluster plans, server.properties, state files, CLI errors."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowerhub.broker.config import (
    BrokerConfigError,
    jvm_options,
    new_cluster_id,
    parse_properties,
    plan_cluster,
    render_properties,
    server_properties,
    validate_cluster_id,
    validate_heap,
)
from flowerhub.broker.state import (
    ClusterState,
    StateFileError,
    is_alive,
    node_state,
    processes_using,
    read_state,
    remove_state,
    state_path,
    write_state,
)
from flowerhub.cli import main

CID = "MkU3OEVBNTcwNTJENDM2Qk"
DATA = Path("/data/kafka")


@pytest.mark.parametrize(
    ("ports", "bootstrap", "voters", "rf", "isr"),
    [
        ([9092, 9093], "127.0.0.1:9092", "1@127.0.0.1:9093", 1, 1),
        (
            [2001, 2002, 2003, 2004, 2005, 2006],
            "127.0.0.1:2001,127.0.0.1:2003,127.0.0.1:2005",
            "1@127.0.0.1:2002,2@127.0.0.1:2004,3@127.0.0.1:2006",
            3,
            2,
        ),
    ],
)
def test_plan_lays_out_nodes_ports_and_replication(
    ports: list[int], bootstrap: str, voters: str, rf: int, isr: int
) -> None:
    plan = plan_cluster(CID, DATA, ports)
    assert plan.bootstrap == bootstrap
    assert plan.quorum_voters == voters
    assert (plan.replication_factor, plan.min_insync_replicas) == (rf, isr)
    assert [n.node_id for n in plan.nodes] == list(range(1, len(ports) // 2 + 1))
    assert plan.node_dir(1) == DATA / "node-1"


@pytest.mark.parametrize(
    ("cluster_id", "ports", "message"),
    [
        (CID, [9092, 9093, 9094], "odd count"),
        (CID, [9092, 9093, 9094, 9095], "1 or 3 nodes"),
        (CID, [], "1 or 3 nodes"),
        (CID, [9092, 9092], "own two ports"),
        (CID, [80, 9093], "outside 1024..65535"),
        (CID, [9092, 70000], "outside 1024..65535"),
        ("short", [9092, 9093], "22 URL-safe"),
        ("-kU3OEVBNTcwNTJENDM2Qk", [9092, 9093], "22 URL-safe"),
        ("MkU3OEVBNTcwNTJENDM2Q+", [9092, 9093], "22 URL-safe"),
    ],
)
def test_bad_plans_fail_with_a_clear_error(cluster_id: str, ports: list[int], message: str) -> None:
    with pytest.raises(BrokerConfigError, match=message):
        plan_cluster(cluster_id, DATA, ports)


def test_unknown_node_is_a_clear_error() -> None:
    with pytest.raises(BrokerConfigError, match="no node 4"):
        plan_cluster(CID, DATA, [9092, 9093]).node(4)


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        (
            [9092, 9093],
            {
                "node.id": "1",
                "default.replication.factor": "1",
                "min.insync.replicas": "1",
                "offsets.topic.replication.factor": "1",
                "transaction.state.log.min.isr": "1",
            },
        ),
        (
            [9100, 9101, 9102, 9103, 9104, 9105],
            {
                "node.id": "1",
                "default.replication.factor": "3",
                "min.insync.replicas": "2",
                "offsets.topic.replication.factor": "3",
                "transaction.state.log.replication.factor": "3",
                "transaction.state.log.min.isr": "2",
                "controller.quorum.voters": "1@127.0.0.1:9101,2@127.0.0.1:9103,3@127.0.0.1:9105",
            },
        ),
    ],
)
def test_server_properties_per_cluster_size(ports: list[int], expected: dict[str, str]) -> None:
    props = server_properties(plan_cluster(CID, DATA, ports), 1)
    assert {k: props[k] for k in expected} == expected
    assert props["auto.create.topics.enable"] == "false"
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == (
        f"PLAINTEXT://127.0.0.1:{ports[0]},CONTROLLER://127.0.0.1:{ports[1]}"
    )
    assert props["log.dirs"] == str(DATA / "node-1" / "data")


def test_each_node_gets_its_own_listeners_and_log_dir() -> None:
    plan = plan_cluster(CID, DATA, [9100, 9101, 9102, 9103, 9104, 9105])
    third = server_properties(plan, 3)
    assert third["node.id"] == "3"
    assert third["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9104"
    assert third["log.dirs"] == str(DATA / "node-3" / "data")


_keys = st.from_regex(r"[a-z][a-z0-9.]{0,30}", fullmatch=True)
_values = st.text(
    alphabet=st.characters(blacklist_characters="\n\r\\", blacklist_categories=("Cs", "Cc")),
    max_size=40,
).map(str.strip)


@given(st.dictionaries(_keys, _values, max_size=20))
def test_properties_round_trip(props: dict[str, str]) -> None:
    assert parse_properties(render_properties(props)) == props


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"a": "x\ny"}, "cannot be written"),
        ({"a=b": "c"}, "cannot be written"),
        ({"": "c"}, "cannot be written"),
    ],
)
def test_unwritable_properties_are_refused(props: dict[str, str], message: str) -> None:
    with pytest.raises(BrokerConfigError, match=message):
        render_properties(props)


def test_parse_properties_skips_comments_and_rejects_garbage() -> None:
    assert parse_properties("# c\n! c\n\n a = b \n") == {"a": "b"}
    with pytest.raises(BrokerConfigError, match="line 2"):
        parse_properties("a=b\nnot a property\n")


@given(st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16))
def test_cluster_ids_are_valid_and_never_start_with_a_dash(first: bytes, second: bytes) -> None:
    draws = iter([first, second, b"\x00" * 16])
    cluster_id = new_cluster_id(lambda: next(draws))
    assert validate_cluster_id(cluster_id) == cluster_id
    # base64 '-' is sextet 62: the id starts with '-' exactly when the first byte is 0xF8..0xFB.
    expected = next(b for b in (first, second, b"\x00" * 16) if not 0xF8 <= b[0] <= 0xFB)
    assert base64.urlsafe_b64decode(cluster_id + "==") == expected


def test_cluster_id_needs_sixteen_bytes() -> None:
    with pytest.raises(BrokerConfigError, match="16 random bytes"):
        new_cluster_id(lambda: b"short")


@pytest.mark.parametrize(
    ("heap", "ok"),
    [("512m", True), ("1g", True), ("2G", True), ("0m", False), ("512", False), ("-1g", False)],
)
def test_heap_sizes(heap: str, ok: bool) -> None:
    if ok:
        assert validate_heap(heap) == heap
        for short_lived in (False, True):
            flags = jvm_options(heap, Path("/x/log4j2.properties"), short_lived=short_lived)
            assert f"-Xmx{heap}" in flags
            # exactly one collector, or the JVM refuses to start
            assert sum(f.startswith("-XX:+Use") and f.endswith("GC") for f in flags) == 1
    else:
        with pytest.raises(BrokerConfigError, match="heap size"):
            validate_heap(heap)


# ------------------------------------------------------------------ state file and /proc


def _state(tmp_path: Path, pid: int) -> ClusterState:
    plan = plan_cluster(CID, tmp_path, [9092, 9093])
    return ClusterState(
        data_dir=str(tmp_path),
        cluster_id=CID,
        kafka_version="9.9.9",
        bootstrap=plan.bootstrap,
        nodes=(node_state(plan, plan.nodes[0], pid),),
        started_at=1.0,
        startup_seconds=2.5,
    )


def test_state_file_round_trip_and_removal(tmp_path: Path) -> None:
    state = _state(tmp_path, pid=4242)
    write_state(state)
    assert read_state(tmp_path) == state
    assert state.plan().bootstrap == state.bootstrap
    remove_state(tmp_path)
    assert read_state(tmp_path) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "unreadable"),
        ('{"version": 99}', "version 99"),
        ('{"version": 1, "nodes": []}', "malformed"),
        ("[]", "malformed"),
    ],
)
def test_bad_state_files_fail_clearly(tmp_path: Path, text: str, message: str) -> None:
    state_path(tmp_path).write_text(text)
    with pytest.raises(StateFileError, match=message):
        read_state(tmp_path)


def test_dead_and_reaped_processes_are_not_alive(tmp_path: Path) -> None:
    marker = tmp_path / "node-1" / "server.properties"
    code = "import time; time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code, str(marker)])
    try:
        assert is_alive(proc.pid)
        # Between fork and exec the child still shows the parent's command line: wait for exec.
        deadline = time.monotonic() + 10.0
        while processes_using(tmp_path) != [proc.pid] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert processes_using(tmp_path) == [proc.pid]
    finally:
        proc.kill()
        proc.wait()
    assert not is_alive(proc.pid)
    assert processes_using(tmp_path) == []


# ------------------------------------------------------------------ CLI user errors


def test_missing_jars_and_bad_arguments_are_clear_user_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLOWERHUB_KAFKA_HOME", str(tmp_path / "empty-home"))
    assert main(["broker", "start", "--data-dir", str(tmp_path)]) == 2
    assert "run `make kafka`" in capsys.readouterr().err
    assert main(["broker", "status", "--data-dir", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main(["broker", "status"]) == 1
    assert "no local Kafka was started" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["broker", "start", "--nodes", "2"])


def test_previous_ports_read_back_in_plan_order(tmp_path: Path) -> None:
    from flowerhub.broker.config import plan_cluster, render_properties, server_properties
    from flowerhub.broker.launcher import ports_free, previous_ports

    assert previous_ports(tmp_path, 3, secure=False) is None  # a fresh dir
    ports = [41001, 41002, 41003, 41004, 41005, 41006]
    plan = plan_cluster("sqkBoUZ5RpaOERPsPb1wCw", tmp_path, ports)
    for node in plan.nodes:
        node_dir = tmp_path / f"node-{node.node_id}"
        node_dir.mkdir()
        text = render_properties(server_properties(plan, node.node_id))
        (node_dir / "server.properties").write_text(text)
    assert previous_ports(tmp_path, 3, secure=False) == ports
    assert previous_ports(tmp_path, 3, secure=True) is None  # laid out without TLS
    assert previous_ports(tmp_path, 4, secure=False) is None
    assert ports_free([]) is True
