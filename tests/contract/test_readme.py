"""README.md examples run: `# doctest` shell blocks are executed, Python blocks exec'd, and
every other `flowerhub ...` line in a shell block must parse with the real CLI parser.

(``contract/README.md`` has its own test: tests/unit/contract/test_schemas_readme.py.)
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from flowerhub.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8")
SH_BLOCKS = re.findall(r"^ *```sh\n(.*?)^ *```", TEXT, flags=re.DOTALL | re.MULTILINE)
PY_BLOCKS = re.findall(r"^```python\n(.*?)^```", TEXT, flags=re.DOTALL | re.MULTILINE)
DOCTESTS = [b for b in SH_BLOCKS if b.lstrip().startswith("# doctest")]


def _commands(block: str) -> list[str]:
    lines = (ln.split(" # ")[0].strip() for ln in block.splitlines())
    return [ln for ln in lines if ln and not ln.startswith("#")]


FLOWERHUB_LINES = sorted(
    {
        part.strip()
        for block in SH_BLOCKS
        for line in _commands(block)
        for part in line.split("&&")
        if part.strip().startswith("flowerhub ")
    }
)


def test_the_two_commands_are_stated() -> None:
    assert "make demo" in TEXT
    assert "make test" in TEXT
    assert DOCTESTS, "README has no runnable shell example"
    assert PY_BLOCKS, "README has no Python example"


@pytest.mark.parametrize("block", DOCTESTS)
def test_doctest_shell_blocks_run(block: str) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for command in _commands(block):
        done = subprocess.run(  # commands from our own README
            ["bash", "-c", command],  # bash from PATH
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        assert done.stdout.strip(), f"{command} printed nothing"


@pytest.mark.parametrize("block", PY_BLOCKS)
def test_python_blocks_run(block: str) -> None:
    namespace: dict[str, object] = {}
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102  # our own README
    assert len(namespace) > 1  # the block defined the names its asserts use


@pytest.mark.parametrize("line", FLOWERHUB_LINES)
def test_every_flowerhub_example_parses(line: str) -> None:
    args = shlex.split(line)[1:]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parsed = build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"README example `{line}` does not parse: {err.getvalue()}")
    assert callable(parsed.func), line
