"""The brats-lesionwise convention: answers worked out by hand, every label convention, two-focus phantoms.

Most cases are 10 x 10 plates one voxel thick (z = 5): every voxel of a plate is on its surface, so
each surface distance is a plain difference of x and each HD95 can be read off a sorted list
(numpy's 95th percentile of n values sits at rank 0.95 (n - 1), interpolated).
"""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from mstkd.cli.main import main
from mstkd.conventions import label_convention, region_masks
from mstkd.imageio import array_to_image, image_to_array
from mstkd.lesionwise import region_lesionwise
from mstkd.metrics import metric_convention, region_scores

pytestmark = pytest.mark.skipif(sys.version_info < (3, 10), reason="panoptica needs Python 3.10 or newer")

GRID = (60, 20, 11)
PENALTY = 374.0


def plate(x0, x1, y1=10, shape=GRID):
    """A one-voxel-thick plate x0 <= x < x1, 0 <= y < y1, at z = 5."""
    mask = np.zeros(shape, bool)
    mask[x0:x1, 0:y1, 5] = True
    return mask


A, B = plate(5, 15), plate(35, 45)  # 100 voxels each; the 20-voxel gap keeps them two lesions
EMPTY = np.zeros(GRID, bool)

# name: (ground truth, prediction, lesion-wise Dice, lesion-wise HD95, detected, missed, false,
#        global Dice, global HD95)
KNOWN = {
    # B is missed: (1 + 0) / 2 and (0 + 374) / 2. Globally 2*100/(200+100); B's voxels lie 21..30 mm
    # from A, 10 at each distance: 200 zeros then 21..30, rank 284.05 of 300 holds 29.
    "missed lesion": (A | B, A, 0.5, 187.0, 1, 1, 0, 2 / 3, 29.0),
    # A 9-voxel false lesion (the volume threshold spares only ground-truth lesions): (1 + 0) / 2 and
    # (0 + 374) / 2. Globally 200/209, and 9 of 209 distances are too few to move the 95th percentile.
    "false lesion": (A, A | plate(35, 38, y1=3), 0.5, 187.0, 1, 0, 1, 200 / 209, 0.0),
    # One 400-voxel component touches both lesions, so each lesion is scored against all of it:
    # Dice 2*100/(100+400) = 0.4. HD95: 200 zeros (A, and the plate over A), then the plate beyond A at
    # 1..30 mm, 10 each; rank 474.05 of 500 holds 28. Globally 2*200/(200+400); the 20-voxel gap lies
    # 1..10 mm from A or B, 20 each: 400 zeros then 200 values, rank 569.05 of 600 holds 9.
    "two lesions merged": (A | B, plate(5, 45), 0.4, 28.0, 2, 0, 0, 2 / 3, 9.0),
    "both empty": (EMPTY, EMPTY, 1.0, 0.0, 0, 0, 0, 1.0, 0.0),
    "empty ground truth": (EMPTY, A, 0.0, PENALTY, 0, 0, 1, 0.0, PENALTY),
    "empty prediction": (A, EMPTY, 0.0, PENALTY, 0, 1, 0, 0.0, PENALTY),
    # 50 voxels = 50 mm3 is not over the threshold: the missed lesion is left out. Globally
    # 2*100/(150+100); its voxels lie 21..25 mm from A: 200 zeros then 50, rank 236.55 holds 24.
    "missed lesion under the threshold": (A | plate(35, 40), A, 1.0, 0.0, 1, 0, 0, 0.8, 24.0),
    # 55 voxels are over it: a missed lesion again.
    "missed lesion over the threshold": (A | plate(35, 40, y1=11), A, 0.5, 187.0, 1, 1, 0, 200 / 255, 24.0),
    # A prediction of a small lesion is not a false one.
    "small lesion found": (A | plate(35, 40), A | plate(35, 40), 1.0, 0.0, 1, 0, 0, 1.0, 0.0),
    # Pieces 6 voxels apart are one lesion of 200 voxels (their 3-voxel dilations touch): Dice
    # 2*100/(200+100); the far piece lies 7..16 mm from A, rank 284.05 of 300 holds 15.
    "pieces 6 voxels apart": (A | plate(21, 31), A, 2 / 3, 15.0, 1, 0, 0, 2 / 3, 15.0),
    # 7 voxels apart they are two lesions and the far one is missed.
    "pieces 7 voxels apart": (A | plate(22, 32), A, 0.5, 187.0, 1, 1, 0, 2 / 3, 16.0),
    # A prediction 2 voxels beside A hits it (Dice 0); its voxels and A's lie 3..12 mm from each
    # other, 20 at each distance: rank 189.05 of 200 holds 12.
    "prediction 2 voxels away": (A, plate(17, 27), 0.0, 12.0, 1, 0, 0, 0.0, 12.0),
    # 3 voxels beside A it misses: a missed and a false lesion, (374 + 374) / 2.
    "prediction 3 voxels away": (A, plate(18, 28), 0.0, PENALTY, 0, 1, 1, 0.0, 13.0),
}


@pytest.mark.parametrize("name", KNOWN)
def test_known_answers_worked_out_by_hand(name):
    reference, prediction, dice, hd95, detected, missed, false, global_dice, global_hd95 = KNOWN[name]

    score = region_lesionwise(reference, prediction)

    assert score.dice == pytest.approx(dice, abs=1e-12)
    assert score.hd95 == pytest.approx(hd95, abs=1e-9)
    assert (score.lesions_detected, score.lesions_missed, score.lesions_false) == (detected, missed, false)
    assert score.global_dice == pytest.approx(global_dice, abs=1e-12)
    assert score.global_hd95 == pytest.approx(global_hd95, abs=1e-9)


def test_the_volume_threshold_is_in_cubic_millimetres_and_hd95_in_millimetres():
    small = plate(35, 40)  # 50 voxels of 8 mm3: 400 mm3, over the threshold
    assert region_lesionwise(A | small, A, (2.0, 2.0, 2.0)).dice == 0.5
    # The prediction 2 voxels beside A: every distance doubles along x at 2 mm.
    assert region_lesionwise(A, plate(17, 27), (2.0, 1.0, 1.0)).hd95 == pytest.approx(24.0)
    assert region_lesionwise(A | small, A | small, (2.0, 2.0, 2.0)).hd95 == 0.0


def tumour(shape=(64, 40, 40), et=4):
    """Two tumours far apart: an oedema block around a core with an enhancing centre, and a bare core."""
    labels = np.zeros(shape, np.uint8)
    labels[4:20, 4:20, 4:20] = 2
    labels[8:16, 8:16, 8:16] = 1
    labels[10:14, 10:14, 10:14] = et
    labels[40:50, 20:30, 20:30] = 1
    labels[42:48, 22:28, 22:28] = et
    return labels


def test_every_label_convention_scores_the_same_lesions():
    for name, et in (("brats2021", 4), ("brats2023", 3), ("brats2024", 3)):
        labels = label_convention(name)
        truth = tumour(et=et)
        missed_second = np.where(np.arange(64)[:, None, None] >= 30, 0, truth).astype(np.uint8)

        scores = region_scores(truth, missed_second, labels, convention="brats-lesionwise")

        expected_regions = ["WT", "TC", "ET"] + (["RC"] if name == "brats2024" else [])
        assert list(scores) == expected_regions, name
        for region in ("WT", "TC", "ET"):  # two lesions each, the second one missed
            assert (scores[region].dice, scores[region].hd95) == (0.5, 187.0), (name, region)
            assert scores[region].extra["lesions_missed"] == 1
        if name == "brats2024":
            assert scores["RC"].dice == 1.0 and scores["RC"].extra["lesions_detected"] == 0


def test_the_resection_cavity_is_a_region_of_its_own_and_in_no_tumour_region():
    labels = label_convention("brats2024")
    truth = tumour(et=3)
    truth[30:38, 4:12, 4:12] = 4  # a cavity between the tumours
    found = truth.copy()
    found[40:50] = 0  # the second tumour is missed, the cavity found

    scores = region_scores(truth, found, labels, convention="brats-lesionwise")
    without_cavity = region_scores(
        np.where(truth == 4, 0, truth), found, labels, convention="brats-lesionwise"
    )

    assert (scores["RC"].dice, scores["RC"].hd95, scores["RC"].extra["lesions_detected"]) == (1.0, 0.0, 1)
    found[30:38] = 0
    assert region_scores(truth, found, labels, convention="brats-lesionwise")["RC"].dice == 0.0
    assert {r: s.dice for r, s in without_cavity.items() if r != "RC"} == {
        r: s.dice for r, s in scores.items() if r != "RC"
    }


def write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(array_to_image(array.astype(np.uint8)), str(path))


def test_evaluate_names_the_convention_and_writes_every_value(tmp_path, capsys):
    truth = tumour(et=3)
    truth[30:38, 4:12, 4:12] = 4
    write(tmp_path / "gt" / "a_seg.nii.gz", truth)
    write(tmp_path / "pred" / "a.nii.gz", np.where(np.arange(64)[:, None, None] >= 40, 0, truth))

    status = main(
        [
            "evaluate", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"),
            "--convention", "brats-lesionwise", "--labels", "brats2024",
            "--json", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv"),
        ]
    )  # fmt: skip

    out = capsys.readouterr().out
    assert status == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["convention"] == "brats-lesionwise"
    case = report["cases"][0]
    assert list(case) == ["case", "WT", "TC", "ET", "RC"]
    assert list(case["TC"]) == ["dice", "hd95", "global_dice", "global_hd95"] + [
        f"lesions_{k}" for k in ("detected", "missed", "false")
    ]
    assert (case["TC"]["dice"], case["TC"]["hd95"], case["TC"]["lesions_missed"]) == (0.5, 187.0, 1)
    assert case["TC"]["global_dice"] == pytest.approx(2 * 512 / (512 + 1000 + 512))  # 8^3 of 8^3 + 10^3
    assert case["RC"]["dice"] == 1.0 and report["mean"]["RC"]["lesions_detected"] == 1.0
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert rows[0]["convention"] == "brats-lesionwise" and rows[0]["TC_lesions_missed"] == "1"
    assert list(rows[0])[1:8] == ["WT_dice", "WT_hd95", "WT_global_dice", "WT_global_hd95"] + [
        f"WT_lesions_{k}" for k in ("detected", "missed", "false")
    ]
    lines = out.splitlines()
    assert "brats-lesionwise" in lines[0] and "global_dice" in lines[2]
    assert [line.split()[0] for line in lines[3:7]] == ["WT", "TC", "ET", "RC"]


def test_without_panoptica_the_convention_is_refused_with_the_extra_to_install(tmp_path, capsys, monkeypatch):
    write(tmp_path / "gt" / "a_seg.nii.gz", tumour())
    write(tmp_path / "pred" / "a.nii.gz", tumour())
    monkeypatch.setitem(sys.modules, "panoptica", None)  # what `import panoptica` meets when it is absent

    status = main(["evaluate", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"), "--convention",
                   "brats-lesionwise"])  # fmt: skip

    err = capsys.readouterr().err
    assert status == 2
    assert "pip install 'mstkd[lesionwise]'" in err and len(err.strip().splitlines()) == 1
    assert metric_convention("brats-legacy").name == "brats-legacy"  # the others need nothing


def test_evaluate_model_reports_lesionwise_and_global_values(tiny_model_file, phantom_root, tmp_path):
    from mstkd.splits import write_split

    split = write_split(tmp_path / "test.txt", ["BraTS2021_00001"])
    out = tmp_path / "evaluation"
    status = main(
        [
            "evaluate-model", "--checkpoint", str(tiny_model_file), "--data", str(phantom_root),
            "--split", str(split), "--subsets", "flair", "--convention", "brats-lesionwise",
            "--out", str(out), "--device", "cpu",
        ]
    )  # fmt: skip

    assert status == 0
    table = json.loads((out / "table.json").read_text())
    assert table["convention"] == "brats-lesionwise"
    row = table["table"][0]
    assert [k for k in row if k.endswith("_WT")] == [
        f"{m}_WT"
        for m in (
            "dice",
            "hd95",
            "global_dice",
            "global_hd95",
            "lesions_detected",
            "lesions_missed",
            "lesions_false",
        )
    ]
    assert all(0.0 <= row[f"{m}_{r}"] <= 1.0 for m in ("dice", "global_dice") for r in ("WT", "TC", "ET"))
    markdown = (out / "table.md").read_text()
    assert "metric convention: brats-lesionwise" in markdown
    assert "| subset | Dice WT | Dice TC | Dice ET | HD95 WT" in markdown and "global HD95 ET |" in markdown
    with open(out / "cases.csv") as stream:
        header = next(r for r in csv.reader(stream) if not r[0].startswith("#"))
    assert header[3:] == ["dice", "hd95", "global_dice", "global_hd95"] + [
        f"lesions_{k}" for k in ("detected", "missed", "false")
    ]


@pytest.fixture(scope="module")
def two_foci():
    """Case 7 of seed 11 on the 1 mm BraTS grid: two foci, one oedema, two tumour cores."""
    from mstkd.phantom.generate import generate_case

    case = generate_case(11, 7)
    assert len(case.plan.foci) == 2
    return image_to_array(case.labels), label_convention(case.convention), case.labels.GetSpacing()


def test_a_missed_second_focus_costs_half_the_lesionwise_dice_of_the_core_but_little_global_dice(two_foci):
    import cc3d

    truth, labels, spacing = two_foci
    cores, count = cc3d.connected_components(region_masks(truth, labels)["TC"], return_N=True)
    assert count == 2
    sizes = np.bincount(cores.ravel())[1:]
    second = cores == 1 + int(np.argmin(sizes))
    predicted = truth.copy()
    predicted[second] = labels.values["ed"]  # the second core called oedema: WT unchanged

    scores = region_scores(truth, predicted, labels, spacing, "brats-lesionwise")

    whole, core = scores["WT"], scores["TC"]
    # WT is one lesion, found exactly: lesion-wise and global agree.
    assert (whole.dice, whole.hd95, whole.extra["lesions_detected"]) == (1.0, 0.0, 1)
    assert (whole.extra["global_dice"], whole.extra["global_hd95"]) == (1.0, 0.0)
    # TC is two lesions, one found exactly and one missed: (1 + 0) / 2 and (0 + 374) / 2 ...
    assert (core.dice, core.hd95) == (0.5, 187.0)
    assert (core.extra["lesions_detected"], core.extra["lesions_missed"]) == (1, 1)
    # ... while the global Dice only loses the second core's voxels: 2|big| / (2|big| + |small|).
    assert core.extra["global_dice"] == pytest.approx(2 * sizes.max() / (2 * sizes.max() + sizes.min()))
    assert core.extra["global_dice"] > 0.8 and core.extra["global_hd95"] < 50.0
    assert core.extra["global_hd95"] == pytest.approx(
        region_scores(truth, predicted, labels, spacing, "brats-legacy")["TC"].hd95
    )


def test_lesionwise_equals_global_on_a_single_lesion_found_with_errors(two_foci):
    truth, labels, spacing = two_foci
    shifted = np.roll(truth, 2, axis=0)  # every region off by 2 mm, no lesion lost or added

    lesionwise = region_scores(truth, shifted, labels, spacing, "brats-lesionwise")
    legacy = region_scores(truth, shifted, labels, spacing, "brats-legacy")

    assert lesionwise["WT"].extra["lesions_detected"] == 1 and lesionwise["WT"].extra["lesions_false"] == 0
    assert lesionwise["WT"].dice == pytest.approx(legacy["WT"].dice) == lesionwise["WT"].extra["global_dice"]
    assert lesionwise["WT"].hd95 == pytest.approx(legacy["WT"].hd95) == lesionwise["WT"].extra["global_hd95"]
    assert 0.8 < legacy["WT"].dice < 1.0
