"""`flowerhub broker start|status|stop` end to end on a broker of its own (tmp data dir)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowerhub.broker.launcher import kill_node
from flowerhub.broker.state import processes_using, read_state, state_path
from flowerhub.cli import main


@pytest.mark.integration
def test_start_status_crash_restart_stop_leaves_no_java_process(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    taken_port: int,
) -> None:
    data = tmp_path / "kafka"
    data.mkdir()
    picks = hand_out_taken_port_first(monkeypatch, taken_port)
    try:
        # The first port pick collides with a live socket: start retries on new ports.
        assert main(["broker", "start", "--data-dir", str(data)]) == 0
        out = capsys.readouterr().out
        first = read_state(data)
        assert first is not None
        assert len(picks) == 2
        assert first.nodes[0].broker_port != taken_port
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

        # ... and start replaces it, keeping the cluster id, the data and the ports (running
        # clients reconnect to the same addresses by themselves).
        assert main(["broker", "start", "--data-dir", str(data)]) == 0
        second = read_state(data)
        assert second is not None
        assert second.cluster_id == first.cluster_id
        assert second.nodes[0].pid != node.pid
        assert second.bootstrap == first.bootstrap
        assert second.nodes[0].controller_port == first.nodes[0].controller_port
        assert len(picks) == 2, "no new ports picked for a restart"
        assert main(["broker", "status", "--data-dir", str(data)]) == 0
        capsys.readouterr()
    finally:
        assert main(["broker", "stop", "--data-dir", str(data)]) == 0
    assert "none left" in capsys.readouterr().out
    assert processes_using(data) == []
    assert not state_path(data).exists()
    assert main(["broker", "stop", "--data-dir", str(data)]) == 0  # stopping twice is fine


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port held by a listening socket for the test's duration."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        yield int(squatter.getsockname()[1])


def hand_out_taken_port_first(monkeypatch: pytest.MonkeyPatch, taken: int) -> list[list[int]]:
    """Fault injection: the launcher's first port pick includes ``taken``; later ones are free."""
    from flowerhub.broker import launcher

    real_free_ports = launcher.free_ports
    picks: list[list[int]] = []

    def ports(count: int) -> list[int]:
        fresh = real_free_ports(count)
        picks.append(fresh if picks else [taken, *fresh[1:]])
        return picks[-1]

    monkeypatch.setattr(launcher, "free_ports", ports)
    return picks


@pytest.mark.integration
def test_a_taken_port_is_a_clear_error_with_the_server_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, taken_port: int
) -> None:
    from flowerhub.broker import launcher

    hand_out_taken_port_first(monkeypatch, taken_port)
    monkeypatch.setattr(launcher, "PORT_ATTEMPTS", 1)
    with pytest.raises(launcher.BrokerStartError) as failure:
        launcher.start_cluster(1, tmp_path)
    message = str(failure.value)
    assert f"Kafka at 127.0.0.1:{taken_port} did not come up" in message
    assert "Address already in use" in message  # from the tail of server.log
    assert processes_using(tmp_path) == []
    assert not state_path(tmp_path).exists()
