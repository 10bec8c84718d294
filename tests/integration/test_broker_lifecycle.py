"""`flowerhub broker start|status|stop` end to end on a broker of its own (tmp data dir)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from flowerhub.broker.launcher import kill_node, restart_node
from flowerhub.broker.state import processes_using, read_state, state_path
from flowerhub.cli import main


@pytest.mark.integration
def test_start_status_kill_restart_stop_leaves_no_java_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "kafka"
    data.mkdir()
    try:
        assert main(["broker", "start", "--data-dir", str(data)]) == 0
        out = capsys.readouterr().out
        state = read_state(data)
        assert state is not None
        assert f"bootstrap servers: {state.bootstrap}" in out
        assert "java RSS per node" in out
        (node,) = state.nodes
        assert processes_using(data) == [node.pid]

        assert main(["broker", "status", "--data-dir", str(data)]) == 0
        assert "running, 1/1 nodes" in capsys.readouterr().out

        # A second start on the same dir is a user error, not a second broker.
        assert main(["broker", "start", "--data-dir", str(data)]) == 2
        assert "already runs" in capsys.readouterr().err

        # A killed node leaves a stale state file: status says so, restart recovers it.
        kill_node(data, 1)
        assert main(["broker", "status", "--data-dir", str(data)]) == 1
        assert "stale state (all down)" in capsys.readouterr().out
        restarted = restart_node(data, 1)
        assert restarted.bootstrap == state.bootstrap
        assert restarted.nodes[0].pid != node.pid
        assert main(["broker", "status", "--data-dir", str(data)]) == 0
        capsys.readouterr()
    finally:
        assert main(["broker", "stop", "--data-dir", str(data)]) == 0
    assert "none left" in capsys.readouterr().out
    assert processes_using(data) == []
    assert not state_path(data).exists()


@pytest.mark.integration
def test_restart_after_stop_keeps_the_cluster_id_and_a_stale_state_file_is_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "kafka"
    data.mkdir()
    try:
        assert main(["broker", "start", "--data-dir", str(data)]) == 0
        first = read_state(data)
        assert first is not None
        assert main(["broker", "stop", "--data-dir", str(data)]) == 0
        # Pretend a crash left the state file behind, with a pid that is long gone.
        body = {"version": 1, **asdict(first)}
        body["nodes"] = [{**asdict(first.nodes[0]), "pid": 2**22 + 1}]
        state_path(data).write_text(json.dumps(body))
        assert main(["broker", "start", "--data-dir", str(data)]) == 0
        second = read_state(data)
        assert second is not None
        assert second.cluster_id == first.cluster_id
        assert second.nodes[0].pid != 2**22 + 1
    finally:
        assert main(["broker", "stop", "--data-dir", str(data)]) == 0
    capsys.readouterr()
    assert processes_using(data) == []
