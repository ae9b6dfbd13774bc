"""The 15-subset protocol, whole-volume and the MST-KDNet code's, on real (briefly trained) models."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mstkd.cases import discover_cases
from mstkd.checkpoint import load_checkpoint
from mstkd.cli.main import main
from mstkd.conventions import REGIONS, SEQUENCES, SUBSETS, parse_subsets
from mstkd.experiment import load_experiment
from mstkd.imageio import image_to_array, read_image
from mstkd.inference.model_file import load_trained_model
from mstkd.intensity import normalise_sequences
from mstkd.splits import write_split
from mstkd.training.run import RunFiles
from mstkd.training.trainer import Trainer

CONFIGS = Path(__file__).resolve().parents[1] / "Training" / "configs"


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


@pytest.fixture(scope="module")
def minmax_model_file(phantom_root, tmp_path_factory):
    """A tiny MST-KDNet trained (two steps) on min-max scaled inputs, as the MST-KDNet code scales them."""
    settings = [
        f"data.root={phantom_root}",
        "data.workers=0",
        "data.normalisation=minmax",
        "train.steps=2",
        "train.val_subsets=all",
    ]
    run = tmp_path_factory.mktemp("minmax-run")
    Trainer(load_experiment(CONFIGS / "tiny.yaml", settings), run).run()
    return RunFiles(run).student


def reference_formula_dice(model_file, case, subset):
    """The MST-KDNet code's test loop, written out: centre crop, sigmoid > 0.5 per channel, Dice +1."""
    network = load_trained_model(model_file, torch.device("cpu")).network
    volumes = [image_to_array(read_image(case.sequences[s])).astype(np.float64) for s in SEQUENCES]
    if load_checkpoint(model_file).metadata["experiment"]["data"]["normalisation"] == "minmax":
        volumes = [(v - v.min()) / (v.max() - v.min()) for v in volumes]  # data.py `normlize`
    else:
        volumes = list(normalise_sequences(np.stack(volumes), (True,) * 4))
    batch_x = np.stack(volumes) * np.array(subset.mask, dtype=np.float64)[:, None, None, None]
    seg = image_to_array(read_image(case.segmentation))
    (h, w, d), (ch, cw, cd) = seg.shape, network.patch
    sx, sy, sz = (h - ch - 1) // 2, (w - cw - 1) // 2, (d - cd - 1) // 2  # data.py `center_crop`
    x = batch_x[:, sx : sx + ch, sy : sy + cw, sz : sz + cd]
    y = seg[sx : sx + ch, sy : sy + cw, sz : sz + cd]
    with torch.no_grad():
        seg_m = network(torch.tensor(x, dtype=torch.float32)[None]).probabilities[0].numpy()
    net, snfh, et = seg_m[0] > 0.5, seg_m[1] > 0.5, seg_m[2] > 0.5  # utils.py `get_mask_divide`
    predicted = {"WT": net | snfh | et, "TC": net | et, "ET": et}
    truth = {"WT": y > 0, "TC": (y == 1) | (y == 4), "ET": y == 4}
    return {
        r: (2.0 * (predicted[r] & truth[r]).sum() + 1.0) / (predicted[r].sum() + truth[r].sum() + 1.0)
        for r in REGIONS
    }


@pytest.mark.parametrize("normalisation", ["zscore", "minmax"])
def test_the_reference_protocol_gives_the_mstkdnet_codes_numbers(
    normalisation, tiny_model_file, minmax_model_file, phantom_root, tmp_path
):
    model_file = minmax_model_file if normalisation == "minmax" else tiny_model_file
    case = next(c for c in discover_cases(phantom_root).cases if c.case_id == "BraTS2021_00004")
    split = write_split(tmp_path / "test.txt", [case.case_id])
    out = tmp_path / "evaluation"
    arguments = ["--checkpoint", str(model_file), "--data", str(phantom_root), "--split", str(split)]
    options = ["--subsets", "all;flair,t2", "--protocol", "reference", "--device", "cpu", "--out", str(out)]
    assert main(["evaluate-model", *arguments, *options]) == 0

    table = json.loads((out / "table.json").read_text())
    assert table["protocol"] == "reference" and table["convention"] == "mstkdnet-ref"
    assert "label rule independent (threshold 0.5)" in table["output"]
    for row, subset in zip(table["table"], parse_subsets("all;flair,t2")):
        expected = reference_formula_dice(model_file, case, subset)
        for region in REGIONS:
            assert row[f"dice_{region}"] == pytest.approx(expected[region], abs=1e-9), (subset, region)


def test_the_reference_protocol_refuses_a_label_rule(tiny_model_file, phantom_root, tmp_path, capsys):
    arguments = ["--checkpoint", str(tiny_model_file), "--data", str(phantom_root), "--device", "cpu"]
    status = main(["evaluate-model", *arguments, "--protocol", "reference", "--label-rule", "exclusive"])
    assert status == 2 and "--protocol reference scores as the MST-KDNet code" in capsys.readouterr().err


def test_files_mstkd_did_not_write_are_refused_before_evaluating_unless_overwrite(
    tiny_model_file, phantom_root, tmp_path, capsys
):
    from faults import snapshot

    arguments = ["--checkpoint", str(tiny_model_file), "--data", str(phantom_root), "--device", "cpu"]
    arguments += ["--subsets", "flair"]
    out = tmp_path / "evaluation"
    out.mkdir()
    (out / "cases.csv").write_text("case,notes\nBraTS2021_00000,the user's own\n")
    notes = tmp_path / "notes.safetensors"
    notes.write_bytes(b"not a model of ours")
    before = snapshot(tmp_path)
    assert main(["evaluate-model", *arguments, "--out", str(out)]) == 2
    assert "cases.csv exists and is not a results table written by mstkd" in capsys.readouterr().err
    annotated_copy = ["--model-out", str(notes)]
    assert main(["evaluate-model", *arguments, "--out", str(tmp_path / "new"), *annotated_copy]) == 2
    assert "notes.safetensors exists and is not a model file written by mstkd" in capsys.readouterr().err
    assert snapshot(tmp_path) == before, "refused before any file was written"

    assert main(["evaluate-model", *arguments, "--out", str(out), "--overwrite", *annotated_copy]) == 0
    assert (out / "cases.csv").read_text().startswith("# protocol: ")
    copy = load_checkpoint(notes)
    # mstkd's own files are replaced without --overwrite: the tables and the annotated copy.
    assert main(["evaluate-model", *arguments, "--out", str(out), *annotated_copy]) == 0
    assert load_checkpoint(notes).sha256 == copy.sha256


def test_every_table_and_model_file_written_is_recognised_as_mstkds(tiny_model_file, phantom_root, tmp_path):
    from mstkd.evaluation.protocol import TABLE_FILES, is_our_table

    arguments = ["--checkpoint", str(tiny_model_file), "--data", str(phantom_root), "--device", "cpu"]
    assert main(["evaluate-model", *arguments, "--subsets", "t2", "--out", str(tmp_path / "e")]) == 0
    assert all(is_our_table(tmp_path / "e" / name) for name in TABLE_FILES)
    from mstkd.checkpoint import is_model_file

    huge_header = tmp_path / "huge.safetensors"  # its first 8 bytes claim a header of 2**64 - 1 bytes
    huge_header.write_bytes(b"\xff" * 8 + b"{}")
    assert is_model_file(tiny_model_file) and not is_model_file(huge_header)
    (tmp_path / "other.json").write_text(json.dumps({"protocol": "mine", "table": []}))
    (tmp_path / "other.md").write_text("<!-- a note -->\n| protocol: |\n")
    assert not is_our_table(tmp_path / "other.json") and not is_our_table(tmp_path / "other.md")
