"""`flowerhub mqtt start|status|stop|certs` and `gateway run`'s refusals, as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowerhub.cli import main
from flowerhub.mqtt.pki import common_name

pytestmark = pytest.mark.integration


def test_start_status_certs_stop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "mq"
    assert main(["mqtt", "start", "--data-dir", str(data), "--gateway", "a"]) == 0
    try:
        out = capsys.readouterr().out
        assert "mqtts://127.0.0.1:" in out
        assert "gateway@a" in out
        assert main(["mqtt", "status", "--data-dir", str(data)]) == 0
        assert "running" in capsys.readouterr().out
        # a second start from the same dir says what to do
        assert main(["mqtt", "start", "--data-dir", str(data)]) == 2
        assert "already runs" in capsys.readouterr().err
        home = tmp_path / "home"
        code = main(
            ["mqtt", "certs", "--data-dir", str(data), "--site", "se-7", "--out", str(home)]
        )
        assert code == 0
        assert common_name(home / "se-7.pem") == "se-7"
        assert (home / "ca.pem").read_bytes() == (data / "certs" / "ca.pem").read_bytes()
        assert oct((home / "se-7-key.pem").stat().st_mode & 0o777) == "0o600"
        assert main(["mqtt", "certs", "--data-dir", str(data), "--site", "a/b"]) == 2
        assert "one MQTT topic level" in capsys.readouterr().err
        # a new gateway identity reaches the running broker's ACL
        assert main(["mqtt", "certs", "--data-dir", str(data), "--gateway", "b"]) == 0
        assert "ACL now lists" in capsys.readouterr().out
        assert "user gateway@b" in (data / "acl").read_text()
    finally:
        assert main(["mqtt", "stop", "--data-dir", str(data)]) == 0
    assert "stopped pid" in capsys.readouterr().out
    assert main(["mqtt", "status", "--data-dir", str(data)]) == 1
    assert main(["mqtt", "stop", "--data-dir", str(data)]) == 0
    assert "nothing to stop" in capsys.readouterr().out


def test_gateway_run_refuses_what_cannot_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope.pem")
    args = ["gateway", "run", "--mqtt", "127.0.0.1:1", "--mqtt-ca", missing]
    assert main(args) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["gateway", "run", "--name", "a/b", "--mqtt", "h:1"]) == 2
    assert "gateway name" in capsys.readouterr().err
    assert main(["gateway", "run", "--mqtt", "no-port", "--mqtt-ca", __file__]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
