"""Loading register maps: read a map file, validate it (pydantic model, then the semantic
checks of :mod:`edge.hal.mapcheck`), and find the shipped ones (``edge/maps/*.yaml``).

The model (:mod:`edge.hal.registermap`) and the checks import nothing from here, so the
three modules form no import circle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from edge.hal.errors import MapError
from edge.hal.mapcheck import check_map
from edge.hal.registermap import RegisterMap, validate_map

MAPS_DIR = Path(__file__).resolve().parent.parent / "maps"


def parse_map(data: Any, file: str) -> RegisterMap:
    """Validate a parsed YAML document, every firmware variant's overlay included; raise
    MapError naming the file (``file#variant``) and point."""
    rmap = validate_map(data, file)
    check_map(rmap)
    for name in rmap.variants:
        check_map(rmap.with_variant(name))
    return rmap


def load_map(path: str | Path) -> RegisterMap:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MapError(str(path), None, f"cannot read: {exc}") from None
    return parse_map(data, str(path))


def map_files() -> list[Path]:
    return sorted(MAPS_DIR.glob("*.yaml"))


def load_all() -> dict[str, RegisterMap]:
    maps = [load_map(p) for p in map_files()]
    return {m.oem: m for m in maps}
