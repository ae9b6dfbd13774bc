"""Random tumour geometry for domain-randomised training: the brain kept, the labels redrawn, wide variety."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mstkd.cases import discover_cases
from mstkd.conventions import PHANTOM_CLASSES, label_convention
from mstkd.errors import MSTKDError
from mstkd.experiment.sections import Augmentation, DataConfig
from mstkd.phantom import generate_case, write_phantoms
from mstkd.training.data import LABEL, RAW, TrainingDataset
from mstkd.training.synthesis import SynthesiseSequencesd
from mstkd.training.tumour_shapes import TUMOUR_CLASSES, labels_from_classes, random_tumour

SMALL = (64, 64, 48)
BRATS2021 = label_convention("brats2021")
T1CE = 2  # canonical channel order: flair, t1, t1ce, t2


@pytest.fixture(scope="module")
def class_map():
    return generate_case(5, 0, SMALL).array("classes").astype(np.intp)


def test_a_new_tumour_keeps_the_brain_and_replaces_the_old_tumour(class_map):
    old_tumour = np.isin(class_map, TUMOUR_CLASSES)
    for seed in range(10):
        drawn = random_tumour(class_map, np.random.default_rng(seed))
        assert np.array_equal(drawn > 0, class_map > 0), "the brain's outline never changes"
        new_tumour = np.isin(drawn, TUMOUR_CLASSES)
        assert new_tumour.any()
        # Where the new tumour does not reach, the old one became white matter.
        assert (drawn[old_tumour & ~new_tumour] == PHANTOM_CLASSES["wm"]).all()
        assert np.array_equal(random_tumour(class_map, np.random.default_rng(seed)), drawn)


def test_new_tumours_vary_in_size_foci_and_enhancement(class_map):
    volumes, foci, with_et, without_et = [], [], 0, 0
    for seed in range(30):
        drawn = random_tumour(class_map, np.random.default_rng(seed))
        tumour = np.isin(drawn, TUMOUR_CLASSES)
        volumes.append(int(tumour.sum()))
        foci.append(ndimage.label(tumour)[1])
        has_et = (drawn == PHANTOM_CLASSES["et"]).any()
        with_et, without_et = with_et + has_et, without_et + (not has_et)
    assert max(volumes) > 5 * min(volumes)
    assert max(foci) >= 2 and min(foci) == 1
    assert with_et >= 10 and without_et >= 2


def test_labels_from_classes_code_the_subregions_in_a_convention():
    classes = np.array([0, 1, 2, 3, 4, 5, 6, 7], dtype=np.intp)
    assert labels_from_classes(classes, BRATS2021).tolist() == [0, 0, 0, 0, 1, 1, 4, 2]
    brats2023 = label_convention("brats2023")
    assert labels_from_classes(classes, brats2023).tolist() == [0, 0, 0, 0, 1, 1, 3, 2]


def test_a_sample_with_a_new_tumour_has_labels_its_images_agree_with(class_map):
    transform = SynthesiseSequencesd(RAW, "classes", 1.0, LABEL, BRATS2021, tumours=1.0)
    sample = {
        RAW: np.zeros((4, *class_map.shape), np.float32),
        LABEL: np.zeros((1, *class_map.shape), np.uint8),
    }
    sample["classes"] = class_map[None]
    for seed in range(5):
        transform.set_random_state(seed)
        out = transform(sample)
        labels, t1ce = np.asarray(out[LABEL])[0], np.asarray(out[RAW])[T1CE]
        assert "classes" not in out and labels.shape == class_map.shape
        old = labels_from_classes(class_map, BRATS2021)
        assert not np.array_equal(labels, old)
        et, ed = labels == BRATS2021.values["et"], labels == BRATS2021.values["ed"]
        if et.sum() > 50 and ed.sum() > 50:  # enhancing tumour is brighter than oedema on T1Gd
            assert t1ce[et].mean() > t1ce[ed].mean()


def test_random_tumours_need_synthesis():
    with pytest.raises(MSTKDError, match="set data.synthesis above 0 too"):
        DataConfig(synthetic_tumours=0.5)


def test_a_training_dataset_draws_new_tumours(tmp_path):
    write_phantoms(tmp_path, cases=1, seed=5, shape=SMALL, show_progress=False, class_maps=True)
    cases = discover_cases(tmp_path).cases
    quiet = Augmentation(flip_probability=0.0, intensity_probability=0.0)
    same = DataConfig(root=str(tmp_path), workers=0, augmentation=quiet, synthesis=1.0)
    redrawn = DataConfig(
        root=str(tmp_path), workers=0, augmentation=quiet, synthesis=1.0, synthetic_tumours=1.0
    )
    labels = {}
    for name, data in (("same", same), ("redrawn", redrawn)):
        dataset = TrainingDataset(cases, data, (128, 128, 128), with_teacher=False, seed=0)
        labels[name] = [np.asarray(dataset[(epoch, 0)][LABEL]) for epoch in range(3)]
    assert all(np.array_equal(labels["same"][0], other) for other in labels["same"][1:])
    assert not any(np.array_equal(labels["same"][0], other) for other in labels["redrawn"])
