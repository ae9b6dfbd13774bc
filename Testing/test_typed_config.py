"""Typed configuration: YAML with `extends:`, overrides, and strict dataclass sections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

import pytest

from mstkd.errors import MSTKDError
from mstkd.typed_config import apply_overrides, from_mapping, read_config_file, to_mapping


@dataclass(frozen=True)
class Inner:
    depth: int = 2
    rate: float = 0.1


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    patch: Tuple[int, int, int] = (8, 8, 8)
    widths: Tuple[int, ...] = (16, 32)
    enabled: bool = True
    seed: Optional[int] = None
    inner: Inner = field(default_factory=Inner)


def test_extends_merges_and_overrides_win(tmp_path):
    (tmp_path / "base.yaml").write_text("outer:\n  name: base\n  inner: {depth: 3, rate: 0.5}\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nouter:\n  inner: {depth: 4}\n")
    data = apply_overrides(read_config_file(tmp_path / "child.yaml"), ["outer.patch=[4, 4, 2]"])
    outer = from_mapping(Outer, data["outer"], "outer")
    assert outer == Outer(name="base", patch=(4, 4, 2), inner=Inner(depth=4, rate=0.5))
    assert to_mapping(outer)["patch"] == [4, 4, 2]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nmae": "y"}, "Unknown setting"),
        ({"patch": [1, 2]}, "3 entries"),
        ({"enabled": "yes"}, "true or false"),
        ({"inner": {"depth": 2.5}}, "whole number"),
        ({"inner": {"rate": "fast"}}, "number"),
    ],
)
def test_bad_settings_are_named(data, message):
    with pytest.raises(MSTKDError, match=message):
        from_mapping(Outer, data, "outer")


def test_malformed_override_and_missing_file(tmp_path):
    with pytest.raises(MSTKDError, match="section.key=value"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(MSTKDError, match="not found"):
        read_config_file(tmp_path / "absent.yaml")
