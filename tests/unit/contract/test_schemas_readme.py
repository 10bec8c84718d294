"""The Python examples in contract/README.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flowerhub.cli import main

README = Path(__file__).resolve().parents[3] / "contract" / "README.md"
TEXT = README.read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.DOTALL)


@pytest.mark.parametrize("block", PYTHON_BLOCKS)
def test_python_examples_run(block: str) -> None:
    namespace: dict[str, object] = {}
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102  # our own README
    assert namespace  # the block defined the names it uses


def test_the_encode_command_example_works(capsys: pytest.CaptureFixture[str]) -> None:
    line = next(ln for ln in TEXT.splitlines() if ln.startswith("flowerhub events encode"))
    name, payload = re.match(r"flowerhub events encode (\w+) '(.*)'$", line).groups()  # type: ignore[union-attr]  # the README line exists
    assert main(["events", "encode", name, payload]) == 0
    assert capsys.readouterr().out.startswith("c301")
