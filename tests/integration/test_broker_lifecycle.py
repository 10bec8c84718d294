"""`flowerhub broker start|status|stop` end to end on a broker of its own (tmp data dir)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowerhub.broker.launcher import kill_node
from flowerhub.broker.state import processes_using, read_state, state_path
from flowerhub.cli import main


@pytest.mark.integration
def test_start_status_crash_restart_stop_leaves_no_java_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "kafka"
    data.mkdir()
    try:
        assert main(["broker", "start", "--data-dir", str(data)]) == 0
        out = capsys.readouterr().out
        first = read_state(data)
        assert first is not None
        assert f"bootstrap servers: {first.bootstrap}" in out
        assert "java RSS per node" in out
        (node,) = first.nodes
        assert processes_using(data) == [node.pid]

        assert main(["broker", "status", "--data-dir", str(data)]) == 0
        assert "running, 1/1 nodes" in capsys.readouterr().out

        # A second start on the same dir is a user error, not a second broker.
        assert main(["broker", "start", "--data-dir", str(data)]) == 2
        assert "already runs" in capsys.readouterr().err

        # A crash leaves a stale state file: status says so and exits 1 ...
        kill_node(data, 1)
        assert processes_using(data) == []
        assert main(["broker", "status", "--data-dir", str(data)]) == 1
        assert "stale state (all down)" in capsys.readouterr().out

        # ... and start replaces it, keeping the cluster id and the data.
        assert main(["broker", "start", "--data-dir", str(data)]) == 0
        second = read_state(data)
        assert second is not None
        assert second.cluster_id == first.cluster_id
        assert second.nodes[0].pid != node.pid
        assert main(["broker", "status", "--data-dir", str(data)]) == 0
        capsys.readouterr()
    finally:
        assert main(["broker", "stop", "--data-dir", str(data)]) == 0
    assert "none left" in capsys.readouterr().out
    assert processes_using(data) == []
    assert not state_path(data).exists()
    assert main(["broker", "stop", "--data-dir", str(data)]) == 0  # stopping twice is fine
