"""The training pipeline's switches: normalisation, crop placement, flips, rot90, intensity draws.

Each voxel of a synthetic case holds its own coordinates (min-max scaling maps them back
exactly), so every patch says where it was cut from and how it was turned.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mstkd.conventions import SUBSETS
from mstkd.experiment.sections import Augmentation, DataConfig
from mstkd.training.data import CASE_ID, LABEL, RAW, STUDENT, training_transform

SHAPE = (40, 36, 32)
PATCH = (16, 16, 16)
STILL = Augmentation(flip_probability=0.0, intensity_probability=0.0)


def coordinate_case():
    """Channels 0-2 hold x+1, y+1, z+1 (channel 3 is x+y+z+1); a tumour cube sits in one corner."""
    grid = np.indices(SHAPE).astype(np.float32) + 1.0
    raw = np.stack([grid[0], grid[1], grid[2], grid.sum(axis=0) - 2.0])
    label = np.zeros((1, *SHAPE), dtype=np.uint8)
    label[0, 30:36, 28:34, 24:30] = 1
    return {CASE_ID: "case", RAW: raw, LABEL: label}


def patches(data: DataConfig, draws: int = 40):
    transform = training_transform(PATCH, False, SUBSETS[-1:], data)
    case = coordinate_case()
    out = []
    for seed in range(draws):
        transform.set_random_state(seed=seed)
        (sample,) = transform(case)
        out.append({k: np.asarray(v) for k, v in sample.items() if k != CASE_ID})
    return out


def origin(student: np.ndarray):
    """Where an unturned patch was cut from: its first voxel's coordinates."""
    return tuple(int(round(student[axis, 0, 0, 0] * (SHAPE[axis] - 1))) for axis in range(3))


def test_minmax_maps_each_present_sequence_to_the_unit_interval():
    data = DataConfig(normalisation="minmax", augmentation=STILL)
    for sample in patches(data, 5):
        student = sample[STUDENT]
        assert student.min() >= 0.0 and student.max() <= 1.0
        x0, y0, z0 = origin(student)
        assert np.allclose(student[0], (np.arange(x0, x0 + 16) / (SHAPE[0] - 1))[:, None, None], atol=1e-6)


def test_uniform_crops_land_anywhere_and_tumour_crops_always_hold_tumour():
    uniform = patches(DataConfig(normalisation="minmax", crop="uniform", augmentation=STILL))
    starts = np.array([origin(s[STUDENT]) for s in uniform])
    assert (starts.min(axis=0) <= 2).all()
    assert (starts.max(axis=0) >= np.array(SHAPE) - np.array(PATCH) - 3).all()
    assert min(s[LABEL].sum() for s in uniform) == 0, "a uniform crop may miss the tumour"

    tumour = patches(DataConfig(normalisation="minmax", foreground_ratio=1.0, augmentation=STILL))
    assert all(s[LABEL].sum() > 0 for s in tumour)


def test_flips_together_turn_all_three_axes_on_one_draw():
    together = dataclasses.replace(STILL, flip_probability=0.5, flip_axes_together=True)
    directions = {
        tuple(bool(np.diff(s[STUDENT][axis], axis=axis).mean() < 0) for axis in range(3))
        for s in patches(DataConfig(normalisation="minmax", augmentation=together))
    }
    assert directions == {(False, False, False), (True, True, True)}
    apart = dataclasses.replace(together, flip_axes_together=False)
    directions = {
        tuple(bool(np.diff(s[STUDENT][axis], axis=axis).mean() < 0) for axis in range(3))
        for s in patches(DataConfig(normalisation="minmax", augmentation=apart))
    }
    assert len(directions) > 2


def test_rot90_turns_patches_in_the_first_two_axes():
    turned = dataclasses.replace(STILL, rotate90_probability=1.0)
    for sample in patches(DataConfig(normalisation="minmax", augmentation=turned), 10):
        x_values = sample[STUDENT][0]
        along_first = np.ptp(x_values[:, 0, 0])
        along_second = np.ptp(x_values[0, :, 0])
        z_values = sample[STUDENT][2]
        assert np.ptp(z_values[0, 0, :]) > 0, "the third axis stays where it was"
        assert (along_first == 0) != (along_second == 0)


@pytest.mark.parametrize("channel_wise", [True, False])
def test_intensity_scale_is_drawn_per_sequence_or_once(channel_wise):
    scaled = Augmentation(
        flip_probability=0.0,
        intensity_scale=0.3,
        intensity_shift=0.0,
        intensity_probability=1.0,
        intensity_channel_wise=channel_wise,
    )
    plain = patches(DataConfig(normalisation="minmax", augmentation=STILL), 8)
    varied = patches(DataConfig(normalisation="minmax", augmentation=scaled), 8)
    for before, after in zip(plain, varied):
        factors = [float(after[STUDENT][c].max() / before[STUDENT][c].max()) for c in range(4)]
        assert max(factors) != pytest.approx(1.0) or min(factors) != pytest.approx(1.0)
        assert (max(factors) - min(factors) < 1e-5) != channel_wise
