"""The out-of-distribution phantoms: other tumours, contrasts and artefacts than training's, and held out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from mstkd.cases import HELD_OUT_MARKER, discover_cases
from mstkd.cli.main import USER_ERROR_STATUS, main
from mstkd.conventions import label_convention
from mstkd.errors import MSTKDError
from mstkd.experiment.sections import DataConfig
from mstkd.phantom import (
    anatomy,
    artefacts,
    contrast,
    generate_case,
    ood_artefacts,
    ood_contrast,
    ood_tumour,
    tumour,
)
from mstkd.phantom.anatomy import load_template
from mstkd.phantom.ood_tumour import KINDS, ood_sites, plan_ood_tumour
from mstkd.phantom.tumour import plan_tumour
from mstkd.training.run import usable_cases

SMALL = (64, 64, 48)
BRATS2021 = label_convention("brats2021")


@pytest.fixture(scope="module")
def plans():
    """Many tumour plans of each model, drawn at the standard sites (no images: cheap)."""
    sites = load_template().tumour_sites_mm
    rng = np.random.default_rng(0)
    return (
        [plan_tumour(rng, sites, 2.0) for _ in range(300)],
        [plan_ood_tumour(rng, sites, 2.0) for _ in range(300)],
    )


def elongation(plan) -> float:
    return max(f.semi_axes.max() / f.semi_axes.min() for f in plan.foci)


def test_ood_tumours_have_shapes_and_oedema_the_training_tumours_never_have(plans):
    standard, ood = plans
    assert {p.kind for p in ood} == set(KINDS)
    assert max(len(p.foci) for p in standard) <= 2
    assert min(len(p.foci) for p in ood if p.kind in ("multifocal", "lobulated")) >= 3
    assert max(elongation(p) for p in standard) < 2.0
    assert min(elongation(p) for p in ood if p.kind == "elongated") >= 3.0
    low, high = tumour.OEDEMA_MM
    assert all(low <= p.oedema_mm <= high for p in standard)
    assert not any(low <= p.oedema_mm <= high for p in ood)
    assert all(p.enhancing for p in ood if p.kind != "infiltrative")
    assert not any(p.enhancing for p in ood if p.kind == "infiltrative")


def test_ood_tumours_sit_where_training_tumours_never_do():
    standard = {tuple(site) for site in np.round(load_template().tumour_sites_mm, 3)}
    shallow = {tuple(site) for site in np.round(ood_sites(), 3)}
    assert len(shallow) > 100 and len(standard) > 100
    assert not shallow & standard


def test_ood_contrast_and_artefact_ranges_lie_outside_the_training_ones():
    flair, ood_flair = contrast.MEAN_SIGNAL["flair"], ood_contrast.MEAN_SIGNAL["flair"]
    assert ood_flair["csf"] / ood_flair["wm"] > 2 * flair["csf"] / flair["wm"], "CSF less suppressed"
    assert ood_contrast.TUMOUR_TEXTURE[0] > contrast.TUMOUR_TEXTURE[1]
    assert ood_contrast.ENHANCEMENT_RANGE[0] < contrast.ENHANCEMENT_RANGE[0]
    assert ood_contrast.ENHANCEMENT_RANGE[1] > contrast.ENHANCEMENT_RANGE[1]
    assert ood_artefacts.BIAS_STRENGTH[0] > artefacts.BIAS_STRENGTH[1]
    assert ood_tumour.SITE_DEPTH_MM[1] <= anatomy.SITE_DEPTH_MM, "shallower than every training site"


def wm_unevenness(case) -> float:
    """Spread of the smoothed FLAIR white-matter signal away from the tumour: what a bias field adds."""
    wm = (case.array("tissues") == 3) & ~ndimage.binary_dilation(case.array("seg") > 0, iterations=2)
    weight = ndimage.gaussian_filter(wm.astype(float), 2)
    smooth = ndimage.gaussian_filter(np.where(wm, case.array("flair").astype(float), 0.0), 2)
    inside = wm & (weight > 0.3)
    assert inside.sum() > 500
    return float(np.log(smooth[inside] / weight[inside]).std())


def test_ood_images_are_more_uneven_yet_keep_the_radiological_rules():
    for index in range(3):
        standard = generate_case(4, index, SMALL)
        ood = generate_case(4, index, SMALL, generator="ood")
        assert wm_unevenness(ood) > wm_unevenness(standard)
        assert set(np.unique(ood.array("seg"))) <= BRATS2021.value_set() and ood.array("seg").any()
        brain = ood.array("tissues") > 0
        for sequence in ("flair", "t1", "t1ce", "t2"):
            assert np.array_equal(ood.array(sequence) != 0, brain)
        wm = (ood.array("tissues") == 3) & (ood.array("seg") == 0)
        oedema = ood.array("seg") == BRATS2021.values["ed"]
        if oedema.sum() > 20:
            assert ood.array("flair")[oedema].mean() > ood.array("flair")[wm].mean(), "oedema bright on FLAIR"


def test_a_case_of_the_ood_generator_depends_on_its_seed_and_index_only():
    first, again = generate_case(6, 1, SMALL, generator="ood"), generate_case(6, 1, SMALL, generator="ood")
    assert np.array_equal(first.array("t2"), again.array("t2"))
    assert not np.array_equal(first.array("seg"), generate_case(6, 1, SMALL).array("seg"))


def test_ood_cases_are_marked_held_out_and_training_refuses_them(tmp_path):
    out = tmp_path / "ood"
    assert main(["phantom", str(out), "--shape", "64,64,48", "--cases", "2", "--generator", "ood"]) == 0
    cases = discover_cases(out).cases
    assert len(cases) == 2 and not discover_cases(out).problems
    marker = json.loads((cases[0].folder / HELD_OUT_MARKER).read_text())
    assert marker["generator"] == "ood" and marker["tumour"] in KINDS
    with pytest.raises(MSTKDError, match="held-out"):
        usable_cases(DataConfig(root=str(out)))
    assert main(["phantom", str(tmp_path / "standard"), "--shape", "64,64,48"]) == 0
    assert not (tmp_path / "standard" / "BraTS2021_00000" / HELD_OUT_MARKER).exists()


def test_an_unknown_generator_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["phantom", str(tmp_path), "--generator", "other"])
    assert stopped.value.code == USER_ERROR_STATUS
    assert "ood" in capsys.readouterr().err
    with pytest.raises(MSTKDError, match="generator"):
        generate_case(0, 0, SMALL, generator="other")
