"""The 15-subset protocol on a real (briefly trained) model and real phantom files."""

from __future__ import annotations

import csv
import json

from mstkd.cli.main import main
from mstkd.conventions import SUBSETS
from mstkd.splits import write_split


def test_protocol_tables_have_fifteen_rows_in_paper_order_and_a_named_header(
    tiny_model_file, phantom_root, tmp_path, capsys
):
    split = write_split(tmp_path / "test.txt", ["BraTS2021_00004"])
    out = tmp_path / "evaluation"
    status = main(
        [
            "evaluate-model",
            "--checkpoint",
            str(tiny_model_file),
            "--data",
            str(phantom_root),
            "--split",
            str(split),
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert status == 0
    table = json.loads((out / "table.json").read_text())
    assert [row["subset"] for row in table["table"]] == [s.name for s in SUBSETS] + ["average"]
    assert table["cases"] == 1 and table["convention"] == "brats-legacy" and len(table["sha256"]) == 64
    for row in table["table"]:
        assert all(0.0 <= row[f"dice_{r}"] <= 1.0 for r in ("WT", "TC", "ET"))
        assert all(row[f"hd95_{r}"] >= 0.0 for r in ("WT", "TC", "ET"))
    markdown = (out / "table.md").read_text()
    assert "metric convention: brats-legacy" in markdown and table["sha256"] in markdown
    assert markdown.count("\n| ") == 17  # header row + 15 subsets + average
    with open(out / "cases.csv") as stream:
        rows = [r for r in csv.reader(stream) if not r[0].startswith("#")]
    assert rows[0] == ["case", "subset", "region", "dice", "hd95"] and len(rows) == 1 + 15 * 3
    assert "| all |" in capsys.readouterr().out


def test_a_subset_list_and_the_reference_convention(tiny_model_file, phantom_root, tmp_path):
    split = write_split(tmp_path / "test.txt", ["BraTS2021_00005"])
    out = tmp_path / "evaluation"
    assert (
        main(
            [
                "evaluate-model",
                "--checkpoint",
                str(tiny_model_file),
                "--data",
                str(phantom_root),
                "--split",
                str(split),
                "--subsets",
                "flair,t2;t1ce",
                "--convention",
                "mstkdnet-ref",
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    table = json.loads((out / "table.json").read_text())
    assert [row["subset"] for row in table["table"]] == ["FLAIR+T2", "T1Gd", "average"]
    assert table["convention"] == "mstkdnet-ref"


def test_a_file_that_is_not_a_model_is_refused(phantom_root, tmp_path, capsys):
    fake = tmp_path / "model.safetensors"
    fake.write_bytes(b"\x00" * 64)
    assert (
        main(
            ["evaluate-model", "--checkpoint", str(fake), "--data", str(phantom_root), "--out", str(tmp_path)]
        )
        == 2
    )
    assert "not a readable mstkd checkpoint" in capsys.readouterr().err
