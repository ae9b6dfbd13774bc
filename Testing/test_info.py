"""`mstkd info`: the architecture summary, as text and as exactly-shaped JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mstkd.cli.main import main

CONFIGS = Path(__file__).resolve().parents[1] / "Training" / "configs"


def info_json(capsys, *args: str) -> dict:
    assert main(["info", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_paper_json_counts(capsys):
    result = info_json(capsys, "--config", str(CONFIGS / "paper.yaml"))
    assert list(result) == ["method", "params", "patch"]
    assert result["method"] == "mstkd" and result["patch"] == [160, 192, 128]
    assert list(result["params"]) == ["teacher", "student", "discriminator"]
    assert result["params"]["teacher"] == result["params"]["student"]
    assert result["params"]["student"] == pytest.approx(154.3e6, rel=0.02)
    assert all(isinstance(n, int) and n > 0 for n in result["params"].values())


def test_tiny_json_with_an_override(capsys):
    result = info_json(capsys, "--config", str(CONFIGS / "tiny.yaml"), "--set", "patch=[64, 32, 32]")
    assert result["patch"] == [64, 32, 32]
    assert list(result["params"]) == ["teacher", "student", "discriminator"]
    assert result["params"]["student"] < 300_000


@pytest.mark.parametrize(("name", "roles"), [("baseline", ["student"]), ("magms", ["network"])])
def test_other_methods_name_their_networks(capsys, name, roles):
    assert list(info_json(capsys, "--config", str(CONFIGS / f"{name}.yaml"))["params"]) == roles


def test_text_summary(capsys):
    assert main(["info", "--config", str(CONFIGS / "paper.yaml")]) == 0
    out = capsys.readouterr().out
    assert "4 x 160 x 192 x 128" in out and "ncr, ed, et, background" in out
    assert "transformer" in out and "discriminator" in out


def test_a_bad_config_exits_with_a_message(capsys):
    assert main(["info", "--config", str(CONFIGS / "tiny.yaml"), "--set", "patch=[30, 32, 32]"]) == 2
    assert "multiples of 32" in capsys.readouterr().err
