"""A whole tumour too large to believe is reported: the rule, and the predictor with the demo model."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from mstkd.inference import tumour_extent
from mstkd.inference.predictor import Predictor
from mstkd.inference.tumour_extent import IMPLAUSIBLE_SHARE, extent_warning
from mstkd.phantom import generate_case


def test_a_tumour_over_the_share_of_the_brain_is_reported_and_one_under_it_is_not():
    brain = np.zeros((10, 10, 10), dtype=bool)
    brain[:, :, :5] = True  # 500 voxels
    tumour = np.zeros_like(brain)
    tumour[:4, :, :5] = True  # 200: exactly the share
    assert IMPLAUSIBLE_SHARE == 0.4 and extent_warning(tumour, brain) is None
    tumour[:, :, 5:] = True  # outside the brain: not counted
    assert extent_warning(tumour, brain) is None
    tumour[4, 0, 0] = True
    assert "fills 40% of the brain" in extent_warning(tumour, brain)
    tumour[:9] = True
    assert "fills 90% of the brain" in extent_warning(tumour, brain)
    assert extent_warning(tumour, np.zeros_like(brain)) is None


def test_the_predictor_reports_it_with_the_demo_model(monkeypatch):
    case = generate_case(2026, 0)
    predictor = Predictor("demo", device="cpu", mirror_axes=())
    result = predictor.segment(case.images)
    brain_ml = np.count_nonzero(sitk.GetArrayFromImage(case.images["flair"])) * 1e-3  # 1 mm voxels
    share = result.volumes_ml["WT"] / brain_ml
    assert 0.01 < share < IMPLAUSIBLE_SHARE, share  # a plausible glioma: no warning
    assert not any("of the brain" in warning for warning in result.summary()["warnings"])
    # The same exam where the rule allows less than its tumour: the run's summary carries the warning.
    monkeypatch.setattr(tumour_extent, "IMPLAUSIBLE_SHARE", share / 2)
    warnings = [w for w in predictor.segment(case.images).summary()["warnings"] if "of the brain" in w]
    assert len(warnings) == 1 and "Check each sequence's assignment" in warnings[0]
