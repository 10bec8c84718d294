"""A finished run's archive into the view model (flowerhub.ui.archive): topics, windows, order."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.archive.archiver import codec_decoder
from analytics.archive.rows import RawRecord, decode_row
from analytics.archive.writer import ArchiveWriter
from contract.codec import encode
from flowerhub.testing.ui import T0, S, device_status, fleet_state, telemetry
from flowerhub.ui.archive import ArchiveError, load_archive, ui_topics
from flowerhub.ui.fold import Folder
from flowerhub.ui.model import ViewModel

PREFIX = "demo-1."


def write_archive(root: Path, records: list[tuple[str, int, bytes]]) -> None:
    """(table topic, Kafka timestamp ms, value) -> part files, one offset per topic."""
    decoder, errors = codec_decoder()
    offsets: dict[str, int] = {}
    rows = []
    for topic, ts_ms, value in records:
        offset = offsets.get(topic, 0)
        offsets[topic] = offset + 1
        raw = RawRecord(f"{PREFIX}{topic}", 0, offset, ts_ms, b"k", value)
        rows.append(decode_row(raw, decoder, errors))
    writer = ArchiveWriter(root)
    writer.append(rows)
    writer.flush()
    writer.close()


def ms(t_us: int) -> int:
    return t_us // 1000


def test_loads_the_window_before_the_end_and_the_state_topics_whole(tmp_path: Path) -> None:
    end = T0 + 2000 * S
    write_archive(
        tmp_path,
        [
            ("site.device-status", ms(T0), encode("DeviceStatus", device_status("s1", T0))),
            ("site.telemetry", ms(T0), encode("SiteTelemetry", telemetry("s1", T0))),  # too old
            (
                "site.telemetry",
                ms(end - 10 * S),
                encode("SiteTelemetry", telemetry("s1", end - 10 * S)),
            ),
            ("fleet.state", ms(end), encode("FleetState", fleet_state(end))),
            ("site.commands", ms(end), b"not read by the UI"),
        ],
    )
    model = ViewModel(window_s=900)
    assert load_archive(Folder(model), tmp_path, window_s=900, lookback_s=86_400) == 3
    assert model.now() == end  # an archive's "now" is its newest event
    site = model.sites["s1"]
    assert site.link == "ONLINE"  # compacted state: read from the beginning
    assert site.history is not None
    assert site.history.since(None)["t"] == [end - 10 * S]
    assert [p.t for p in model.fleet] == [end]


def test_ui_topics_and_their_errors(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="not found"):
        ui_topics(tmp_path / "nope")
    with pytest.raises(ArchiveError, match="holds none"):
        ui_topics(tmp_path)
    (tmp_path / f"topic={PREFIX}site.telemetry").mkdir()
    (tmp_path / f"topic={PREFIX}site.commands").mkdir()
    assert ui_topics(tmp_path) == {f"{PREFIX}site.telemetry": "site.telemetry"}
    (tmp_path / "topic=other.fleet.state").mkdir()
    with pytest.raises(ArchiveError, match="several prefixes"):
        ui_topics(tmp_path)
