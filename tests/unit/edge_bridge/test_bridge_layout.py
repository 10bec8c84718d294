"""The bridge's shape, read from its source: no import circle among its modules, nothing in it
touches a register address, a read block or the Modbus transport (that is the HAL's), and no
OEM name appears in its code (docstrings may show an example config)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import edge
from edge.hal.maps import load_all

EDGE = Path(edge.__file__).parent
BRIDGE = EDGE / "bridge"

# The HAL's register-level vocabulary: register addresses and tables, read blocks, the map
# itself and the bookkeeping that works on addresses. The Modbus transport is caught by its
# class and module below and, as an attribute, on a device (``device.transport``): the bridge's
# own config has a ``transport`` (mqtt or kafka: its cloud link), which is not the HAL's.
REGISTER_ATTRIBUTES = {"address", "table", "rmap", "read_bank", "blocks_for", "book"}
DEVICE_NAMES = {"device", "dev", "devices", "hal_device"}
REGISTER_NAMES = {
    "Block",
    "Span",
    "plan_blocks",
    "ModbusTransport",
    "RegisterWrite",
    "HeldRegisters",
    "Heartbeat",
    "WriteBook",
    "TieredPolling",
    "drop_held",
    "plan_heartbeat",
    "poll_tiers",
    "values_from_bank",
}
REGISTER_MODULES = {
    "edge.hal.blocks",
    "edge.hal.codecs",
    "edge.hal.decode",
    "edge.hal.planner",
    "edge.hal.tiers",
    "edge.hal.transport",
    "pymodbus",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(EDGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources(folder: Path) -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text("utf-8")) for p in sorted(folder.rglob("*.py"))}


def imported(tree: ast.Module) -> Iterator[str]:
    """Every module an import statement names (TYPE_CHECKING and function-local ones too)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while (w := stack.pop()) != v:
                comp.append(w)
            if comp:
                out.append(sorted([v, *comp]))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def import_graph(trees: dict[str, ast.Module]) -> dict[str, set[str]]:
    return {m: {t for t in imported(tree) if t in trees and t != m} for m, tree in trees.items()}


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_in_the_bridge() -> None:
    assert cycles(import_graph(sources(BRIDGE))) == []


def test_the_new_hal_modules_are_in_no_circle() -> None:
    """The device's polling, write bookkeeping and opening sit in no circle of the HAL."""
    mine = {"edge.hal.device", "edge.hal.control", "edge.hal.tiers", "edge.hal.connect"}
    assert [c for c in cycles(import_graph(sources(EDGE))) if mine & set(c)] == []


def docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring nodes of a module, its classes and functions."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


BRIDGE_TREES = sources(BRIDGE)


@pytest.mark.parametrize("module", sorted(BRIDGE_TREES))
def test_nothing_register_level_in_the_bridge(module: str) -> None:
    tree = BRIDGE_TREES[module]
    attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {
        a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names
    }
    mods = {
        m for m in imported(tree) if any(m == r or m.startswith(r + ".") for r in REGISTER_MODULES)
    }
    on_device = {
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute)
        and n.attr == "transport"
        and (
            (isinstance(n.value, ast.Name) and n.value.id in DEVICE_NAMES)
            or (isinstance(n.value, ast.Attribute) and n.value.attr in DEVICE_NAMES)
        )
    }
    getattrs = {
        n.args[1].value
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Name)
        and n.func.id == "getattr"
        and len(n.args) >= 2
        and isinstance(n.args[1], ast.Constant)
        and n.args[1].value in {*REGISTER_ATTRIBUTES, "transport"}
    }
    assert attrs & REGISTER_ATTRIBUTES == set()
    assert on_device == set()
    assert getattrs == set()
    assert names & REGISTER_NAMES == set()
    assert mods == set()


@pytest.mark.parametrize("module", sorted(BRIDGE_TREES))
def test_no_oem_name_in_the_bridge(module: str) -> None:
    oems = {oem.lower() for oem in load_all()}
    tree = BRIDGE_TREES[module]
    skip = docstrings(tree)
    words: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            words.append(node.value)
        elif isinstance(node, ast.Name):
            words.append(node.id)
        elif isinstance(node, ast.Attribute):
            words.append(node.attr)
    assert [w for w in words if any(oem in w.lower() for oem in oems)] == []


@pytest.mark.parametrize("module", sorted(BRIDGE_TREES))
def test_no_private_attribute_of_another_object(module: str) -> None:
    """``x._name`` only on ``self`` / ``cls``: each part's state stays behind its interface."""
    found = [
        ast.unparse(n)
        for n in ast.walk(BRIDGE_TREES[module])
        if isinstance(n, ast.Attribute)
        and n.attr.startswith("_")
        and not n.attr.startswith("__")
        and not (isinstance(n.value, ast.Name) and n.value.id in ("self", "cls"))
    ]
    assert found == []
