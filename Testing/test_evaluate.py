"""`mstkd evaluate` on real label-map files: perfect scores, known answers, penalties, user errors."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from mstkd.cli.main import main
from mstkd.evaluation.folders import evaluate_folders
from mstkd.imageio import array_to_image

ET = 4  # brats2021: the enhancing label, so that WT, TC and ET are all the same cube


def write_labels(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> Path:
    """Write a label map given in index order (i, j, k) with the given spacing."""
    image = array_to_image(array.astype(np.uint8))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def cube_labels(shape, corner, size, value=ET):
    labels = np.zeros(shape, np.uint8)
    labels[tuple(slice(c, c + size) for c in corner)] = value
    return labels


def tumour(shape=(20, 24, 28)):
    """A small label map with all three sub-regions (brats2021 values)."""
    labels = cube_labels(shape, (4, 4, 4), 12, value=2)
    labels[6:12, 6:12, 6:12] = 1
    labels[8:10, 8:10, 8:10] = 4
    return labels


def run_cli(capsys, *args):
    status = main(["evaluate", *map(str, args)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


GRID = (30, 30, 30)
CUBE = cube_labels(GRID, (10, 10, 10), 10)
FAR_GT = cube_labels((64, 64, 64), (10, 10, 10), 20)


def far(n):
    return np.maximum(FAR_GT, cube_labels((64, 64, 64), (50, 50, 50), n))


def with_far_voxel():
    labels = CUBE.copy()
    labels[0, 0, 0] = ET
    return labels


# case: (ground truth, prediction, spacing x, y, z, Dice, HD95) from DATA_AND_EVALUATION.md
KNOWN = {
    "self": (CUBE, CUBE, (1, 1, 1), 1.0, 0.0),
    "shift1": (CUBE, cube_labels(GRID, (11, 10, 10), 10), (1, 1, 1), 0.9, 1.0),
    "shift1-2mm": (CUBE, cube_labels(GRID, (11, 10, 10), 10), (2, 1, 1), 0.9, 2.0),
    "shift3": (CUBE, cube_labels(GRID, (13, 10, 10), 10), (1, 1, 1), 0.7, 3.0),
    "nested": (CUBE, cube_labels(GRID, (9, 9, 9), 12), (1, 1, 1), 0.7331, 1.4142),
    "falsepositive": (CUBE, with_far_voxel(), (1, 1, 1), 0.9995, 0.0),
    "far5": (FAR_GT, far(5), (1, 1, 1), 16000 / (16000 + 125), 0.0),
    "far6": (FAR_GT, far(6), (1, 1, 1), 16000 / (16000 + 216), 0.0),
    "far8": (FAR_GT, far(8), (1, 1, 1), 16000 / (16000 + 512), 40.31),
}


def test_known_answers_through_the_cli(tmp_path, capsys):
    for case, (reference, prediction, spacing, _, _) in KNOWN.items():
        write_labels(tmp_path / "gt" / f"{case}_seg.nii.gz", reference, spacing)
        write_labels(tmp_path / "pred" / f"{case}.nii.gz", prediction, spacing)

    status, out, _ = run_cli(
        capsys, "--gt", tmp_path / "gt", "--pred", tmp_path / "pred", "--json", tmp_path / "r.json"
    )

    assert status == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["convention"] == "brats-legacy"
    scores = {c["case"]: c for c in report["cases"]}
    assert sorted(scores) == sorted(KNOWN)
    for case, (_, _, _, expected_dice, expected_hd95) in KNOWN.items():
        for region in ("WT", "TC", "ET"):
            assert scores[case][region]["dice"] == pytest.approx(expected_dice, abs=5e-5), case
            assert scores[case][region]["hd95"] == pytest.approx(expected_hd95, abs=5e-3), case
    expected_mean = np.mean([k[4] for k in KNOWN.values()])
    assert report["mean"]["WT"]["hd95"] == pytest.approx(expected_mean, abs=1e-3)
    assert "brats-legacy" in out.splitlines()[0]
    assert f"{len(KNOWN):>7}" in out


def test_ground_truth_against_itself_in_a_release_layout(tmp_path, capsys):
    gt, pred = tmp_path / "BraTS2023", tmp_path / "pred"
    extensions = [".nii.gz", ".nii", ".nrrd"]
    for number, extension in enumerate(extensions):
        case = f"BraTS-GLI-0000{number}-000"
        labels = np.where(tumour() == 4, 3, tumour())
        seg = write_labels(gt / case / f"{case}-seg.nii.gz", labels, (1.0, 1.2, 2.0), (-10.0, 5.0, 3.0))
        write_labels(gt / case / f"{case}-t2f.nii.gz", labels, (1.0, 1.2, 2.0), (-10.0, 5.0, 3.0))
        pred.mkdir(exist_ok=True)
        sitk.WriteImage(sitk.ReadImage(str(seg)), str(pred / f"{case}{extension}"))
    write_labels(gt / "BraTS-GLI-00009-000" / "BraTS-GLI-00009-000-t1n.nii.gz", tumour())

    status, out, err = run_cli(
        capsys, "--gt", gt, "--pred", pred, "--labels", "brats2023", "--json", tmp_path / "o" / "r.json",
        "--csv", tmp_path / "o" / "r.csv",
    )  # fmt: skip

    assert status == 0
    assert "without a segmentation: BraTS-GLI-00009-000" in err
    report = json.loads((tmp_path / "o" / "r.json").read_text())
    assert list(report) == ["written_by", "convention", "cases", "mean"]
    assert [c["case"] for c in report["cases"]] == [f"BraTS-GLI-0000{n}-000" for n in range(3)]
    for entry in report["cases"]:
        assert list(entry) == ["case", "WT", "TC", "ET"]
        assert all(entry[r] == {"dice": 1.0, "hd95": 0.0} for r in ("WT", "TC", "ET"))
    assert report["mean"] == {r: {"dice": 1.0, "hd95": 0.0} for r in ("WT", "TC", "ET")}
    rows = list(csv.DictReader((tmp_path / "o" / "r.csv").open()))
    assert [r["case"] for r in rows] == [c["case"] for c in report["cases"]]
    assert {r["ET_dice"] for r in rows} == {"1.0"} and {r["convention"] for r in rows} == {"brats-legacy"}
    assert "Labels: brats2023; cases: 3" in out


@pytest.mark.parametrize(
    ("convention", "expected_hd95", "rule"),
    [("brats-legacy", 373.13, "HD95 373.13"), ("mstkdnet-ref", 0.0, "HD95 0")],
)
def test_a_missing_prediction_is_penalised_and_announced(tmp_path, capsys, convention, expected_hd95, rule):
    for case in ("caseA", "caseB"):
        write_labels(tmp_path / "gt" / f"{case}_seg.nii.gz", tumour())
    write_labels(tmp_path / "pred" / "caseA.nii.gz", tumour())
    write_labels(tmp_path / "pred" / "caseZ.nii.gz", tumour())
    out_json = tmp_path / "r.json"

    status, out, err = run_cli(
        capsys,
        "--gt",
        tmp_path / "gt",
        "--pred",
        tmp_path / "pred",
        "--convention",
        convention,
        "--json",
        out_json,
    )

    assert status == 0
    assert "no prediction for 1 case(s): caseB" in err and convention in err and rule in err
    assert "match no case: caseZ" in err
    scores = {c["case"]: c for c in json.loads(out_json.read_text())["cases"]}
    assert scores["caseA"]["ET"] == {"dice": 1.0, "hd95": 0.0}
    assert scores["caseB"]["WT"]["hd95"] == expected_hd95
    assert scores["caseB"]["WT"]["dice"] == pytest.approx(0.0, abs=1e-3)
    assert "1 of them without a prediction" in out and convention in out


def test_evaluation_result_serialises_to_the_file_it_writes(tmp_path):
    write_labels(tmp_path / "gt" / "a_seg.nii.gz", tumour())
    shifted = np.roll(tumour(), 1, axis=2)
    write_labels(tmp_path / "pred" / "a.nii.gz", shifted)
    warnings = []

    result = evaluate_folders(tmp_path / "gt", tmp_path / "pred", "mstkdnet-ref", warn=warnings.append)

    assert warnings == []
    assert result.convention.name == "mstkdnet-ref"
    assert 0.5 < result.mean()["WT"].dice < 1.0 and result.mean()["WT"].hd95 == pytest.approx(1.0)
    assert result.std()["WT"].dice == 0.0
    result.write_json(tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text()) == result.to_json()


def shifted_grid(tmp_path):
    write_labels(tmp_path / "pred" / "a.nii.gz", tumour(), spacing=(1.0, 1.0, 2.0))
    return "spacing 1x1x2 mm"


def moved_origin(tmp_path):
    write_labels(tmp_path / "pred" / "a.nii.gz", tumour(), origin=(0.0, 0.0, 5.0))
    return r"origin \(0\.0, 0\.0, 5\.0\)"


def resized(tmp_path):
    write_labels(tmp_path / "pred" / "a.nii.gz", tumour((20, 24, 30)))
    return r"size \(20, 24, 30\)"


def bad_prediction_label(tmp_path):
    labels = tumour()
    labels[0, 0, 0] = 7
    write_labels(tmp_path / "pred" / "a.nii.gz", labels)
    return r"prediction .*a\.nii\.gz holds label value\(s\) \[7\].*--labels"


def ground_truth_in_another_convention(tmp_path):
    write_labels(tmp_path / "gt" / "a_seg.nii.gz", np.where(tumour() == 4, 3, tumour()))
    write_labels(tmp_path / "pred" / "a.nii.gz", tumour())
    return r"ground truth .*a_seg\.nii\.gz holds label value\(s\) \[3\].*--labels"


def probabilities(tmp_path):
    image = sitk.GetImageFromArray(tumour().astype(np.float32) * 0.3)
    sitk.WriteImage(image, str(tmp_path / "pred" / "a.nii.gz"))
    return "non-integer values"


def two_predictions(tmp_path):
    write_labels(tmp_path / "pred" / "a.nrrd", tumour())
    return "2 predictions.*a.nii.gz, a.nrrd"


def unrelated_predictions(tmp_path):
    (tmp_path / "pred" / "a.nii.gz").rename(tmp_path / "pred" / "a_pred.nii.gz")
    return "No prediction in .* matches a case.*a.nii.gz"


def damaged_prediction(tmp_path):
    (tmp_path / "pred" / "a.nii.gz").write_bytes(b"truncated")
    return "damaged or not an image"


@pytest.mark.parametrize(
    "make_problem",
    [
        shifted_grid,
        moved_origin,
        resized,
        bad_prediction_label,
        ground_truth_in_another_convention,
        probabilities,
        two_predictions,
        unrelated_predictions,
        damaged_prediction,
    ],
)
def test_user_errors_exit_with_2_and_a_message(tmp_path, capsys, make_problem):
    write_labels(tmp_path / "gt" / "a_seg.nii.gz", tumour())
    write_labels(tmp_path / "pred" / "a.nii.gz", tumour())
    expected = make_problem(tmp_path)

    status, out, err = run_cli(capsys, "--gt", tmp_path / "gt", "--pred", tmp_path / "pred")

    assert status == 2
    assert re.search(r"(^|[\r\n])mstkd evaluate: error: ", err), err  # not glued to the progress bar
    assert re.search(expected, err), err
    if make_problem in (shifted_grid, moved_origin, resized):
        assert "not on the grid" in err and err.count("size (") == 2


def test_missing_or_caseless_folders_exit_with_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    write_labels(tmp_path / "pred" / "a.nii.gz", tumour())
    write_labels(tmp_path / "unsegmented" / "a_flair.nii.gz", tumour())

    for gt, pred, message in [
        (tmp_path / "empty", tmp_path / "pred", "holds no image files"),
        (tmp_path / "absent", tmp_path / "pred", "Folder not found"),
        (tmp_path / "unsegmented", tmp_path / "pred", "No case under .* has a segmentation"),
    ]:
        status, _, err = run_cli(capsys, "--gt", gt, "--pred", pred)
        assert status == 2
        assert re.search(message, err), err
    write_labels(tmp_path / "gt" / "a_seg.nii.gz", tumour())
    status, _, err = run_cli(capsys, "--gt", tmp_path / "gt", "--pred", tmp_path / "nothing")
    assert status == 2 and "Prediction folder not found" in err


def test_an_unknown_convention_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--gt", str(tmp_path), "--pred", str(tmp_path), "--convention", "monai"])
    assert exit_info.value.code == 2
    assert "brats-legacy" in capsys.readouterr().err


def test_the_installed_command_runs(tmp_path):
    write_labels(tmp_path / "gt" / "BraTS2021_00000" / "BraTS2021_00000_seg.nii.gz", tumour())
    shutil.copytree(tmp_path / "gt" / "BraTS2021_00000", tmp_path / "pred")
    (tmp_path / "pred" / "BraTS2021_00000_seg.nii.gz").rename(tmp_path / "pred" / "BraTS2021_00000.nii.gz")
    command = str(Path(sys.executable).with_name("mstkd"))

    result = subprocess.run(
        [command, "evaluate", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred")],
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr
    assert "brats-legacy" in result.stdout
    for region in ("WT", "TC", "ET"):
        assert re.search(rf"^{region}\s+1\.0000\s+0\.0000\s+0\.00\s+0\.00\s+1$", result.stdout, re.M)
