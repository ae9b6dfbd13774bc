"""Domain-randomised training data: class maps, contrasts within the orderings, switchable augmentations."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from monai.transforms import RandAdjustContrast, RandBiasField, RandGaussianNoise, RandHistogramShift
from scipy import ndimage

from mstkd.cases import CLASS_MAP_FOLDER, discover_cases
from mstkd.checkpoint import load_checkpoint
from mstkd.conventions import PHANTOM_CLASSES, SEQUENCES, SUBSETS, label_convention
from mstkd.errors import MSTKDError
from mstkd.experiment import load_experiment
from mstkd.experiment.sections import Augmentation, DataConfig
from mstkd.intensity import normalise_sequences
from mstkd.phantom import generate_case, write_phantoms
from mstkd.training.augment import RandGhosting, RandSliceGain, RandThickSlices, acquisition_transforms
from mstkd.training.data import LABEL, PRESENT, RAW, STUDENT, TrainingDataset, cached_transform, case_record
from mstkd.training.run import RunFiles
from mstkd.training.synthesis import (
    MARGIN,
    ORDERINGS,
    OedemaSurroundings,
    draw_means,
    fade_oedema,
    margin,
    oedema_share,
    synthesise,
)
from mstkd.training.trainer import Trainer

TINY = Path(__file__).resolve().parents[1] / "Training" / "configs" / "tiny.yaml"
SMALL = (64, 64, 48)
BRATS2021 = label_convention("brats2021")
ACQUISITION = ("gamma", "bias", "blur", "noise", "thick_slice", "low_resolution")
SPATIAL = ("affine", "elastic")
NO_AUGMENTATION = Augmentation(flip_probability=0.0, intensity_probability=0.0)


@pytest.fixture(scope="module")
def class_map_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("class-map-phantoms")
    write_phantoms(root, cases=3, seed=5, shape=SMALL, show_progress=False, class_maps=True)
    return root


@pytest.fixture(scope="module")
def class_map():
    return generate_case(5, 0, SMALL).array("classes").astype(np.intp)


def test_the_class_map_holds_the_tissues_and_the_tumour_of_the_labels():
    for index in range(4):
        case = generate_case(7, index, SMALL)
        classes, seg, tissues = case.array("classes"), case.array("seg"), case.array("tissues")
        assert set(np.unique(classes)) <= {0, *PHANTOM_CLASSES.values()}
        assert np.array_equal(classes >= PHANTOM_CLASSES["ncr"], seg > 0)
        assert np.array_equal(classes[seg == 0], tissues[seg == 0])
        core = "ncr" if case.plan.enhancing else "net"
        assert (classes[seg == BRATS2021.values["ncr"]] == PHANTOM_CLASSES[core]).all()
        assert (classes[seg == BRATS2021.values["et"]] == PHANTOM_CLASSES["et"]).all()
        assert (classes[seg == BRATS2021.values["ed"]] == PHANTOM_CLASSES["ed"]).all()


def test_class_maps_are_written_beside_the_case_and_discovery_ignores_them(class_map_root):
    discovery = discover_cases(class_map_root)
    assert len(discovery.cases) == 3 and not discovery.problems
    for case in discovery.cases:
        assert (case.folder / CLASS_MAP_FOLDER / f"{case.case_id}_classes.nii.gz").is_file()
        record = case_record(case, with_classes=True)
        loaded = cached_transform(BRATS2021, with_classes=True)(record)
        assert loaded["classes"].shape == loaded[LABEL].shape


def test_drawn_contrasts_keep_every_ordering_and_vary():
    rng = np.random.default_rng(0)
    for sequence, orderings in ORDERINGS.items():
        draws = [draw_means(rng, sequence) for _ in range(300)]
        for brighter, darker in orderings:
            ratios = np.array([d[brighter] / d[darker] for d in draws])
            assert (ratios >= margin(brighter, darker)).all(), (sequence, brighter, darker)
            assert ratios.max() > 2 * ratios.min(), f"{sequence}: {brighter}/{darker} hardly varies"
            if {brighter, darker} == {"gm", "wm"}:
                assert (ratios < MARGIN).mean() > 0.05, f"{sequence}: grey and white matter never close"
            else:
                assert (ratios >= MARGIN).all(), (sequence, brighter, darker)


def test_synthesised_images_keep_every_ordering_inside_each_class(class_map):
    # One slab per class: their interiors (2 voxels from any border) escape the partial-volume blur,
    # and are wide enough for the texture to average out.
    slabs = np.repeat(np.arange(len(PHANTOM_CLASSES) + 1), 10)[:, None, None]
    slab_map = np.broadcast_to(slabs, (len(slabs), 40, 40)).copy()
    interiors = {
        name: ndimage.binary_erosion(slab_map == value, iterations=2)
        for name, value in PHANTOM_CLASSES.items()
    }
    rng = np.random.default_rng(1)
    for _ in range(50):
        images = synthesise(slab_map, rng)
        for channel, sequence in enumerate(SEQUENCES):
            means = {name: float(images[channel][where].mean()) for name, where in interiors.items()}
            for brighter, darker in ORDERINGS[sequence]:
                # Textures move a slab's mean by a few per cent: equal grey and white matter may swap.
                tolerance = 0.9 if margin(brighter, darker) < MARGIN else 1.0
                assert means[brighter] > tolerance * means[darker], (sequence, brighter, darker, means)
    images = synthesise(class_map, rng)
    brain = np.broadcast_to(class_map > 0, images.shape)
    assert np.array_equal(images != 0, brain), "0 outside the brain, and only there"


def test_oedema_fades_into_the_tissue_around_it_and_its_label_marks_the_half_way(class_map):
    oedema = class_map == PHANTOM_CLASSES["ed"]
    assert oedema.sum() > 100
    share = oedema_share(class_map, fade_voxels=2.0)
    assert np.array_equal(share > 0.5, oedema), "the label is where oedema dominates"
    tissue = np.isin(class_map, (PHANTOM_CLASSES["gm"], PHANTOM_CLASSES["wm"]))
    outside = ndimage.binary_dilation(oedema) & ~oedema & tissue
    assert np.allclose(share[outside], 0.5 - 0.5 / 4), "one voxel out: a quarter of the way down"
    elsewhere = np.isin(class_map, [PHANTOM_CLASSES[name] for name in ("csf", "ncr", "net", "et")])
    assert (share[elsewhere] == 0).all(), "never in CSF or the core"
    deep = oedema & (ndimage.distance_transform_edt(~tissue) >= 1.5)  # two voxels from healthy tissue
    assert deep.any() and (oedema_share(class_map, fade_voxels=1.0)[deep] == 1).all()
    assert np.array_equal(oedema_share(class_map, 0.0), oedema.astype(np.float32))

    # The faded image: oedema's brightness spills a little into the tissue around and thins at its edge.
    image = np.where(oedema, 1.0, 0.2).astype(np.float32)
    faded = fade_oedema(image, OedemaSurroundings.of(class_map), share, np.float32(1.0))
    assert np.allclose(faded[outside], 0.2 + 0.8 * share[outside], atol=1e-5)
    edge = oedema & ndimage.binary_dilation(outside)
    assert (faded[edge] < 1.0).all() and (faded[edge] >= 0.2 + 0.8 * 0.5 - 1e-5).all()
    assert np.array_equal(faded[share == 0], image[share == 0]), "nothing changes where there is no oedema"


def test_acquisition_augmentations_are_off_by_default_and_switch_on_one_by_one():
    assert acquisition_transforms(Augmentation()) == []
    switched = {
        "gamma_probability": RandAdjustContrast,
        "bias_probability": RandBiasField,
        "noise_probability": RandGaussianNoise,
        "thick_slice_probability": RandThickSlices,
        "intensity_curve_probability": RandHistogramShift,
        "slice_gain_probability": RandSliceGain,
        "ghosting_probability": RandGhosting,
    }
    for name, kind in switched.items():
        (transform,) = acquisition_transforms(replace(Augmentation(), **{name: 0.5}))
        assert isinstance(transform, kind)
    with pytest.raises(MSTKDError, match="thick_slice_probability"):
        Augmentation(thick_slice_probability=1.5)
    with pytest.raises(MSTKDError, match="data.synthesis"):
        DataConfig(synthesis=2.0)


def test_the_intensity_curve_keeps_the_order_of_intensities_but_not_their_spacing():
    volume = np.concatenate([np.zeros(20), np.linspace(0.1, 2.0, 980)]).astype(np.float32)
    volume = volume.reshape(1, 10, 10, 10)
    (curve,) = acquisition_transforms(replace(Augmentation(), intensity_curve_probability=1.0))
    curve.set_random_state(5)
    changed = np.asarray(curve(volume)).ravel()
    assert np.all(np.diff(changed) >= 0), "monotone: brighter stays brighter"
    assert changed[0] == 0.0 and np.isclose(changed[-1], 2.0), "the ends (0 outside the brain) are kept"
    steps = np.diff(changed[20:])
    assert steps.max() > 1.5 * steps.min(), "not a linear rescaling"


def test_ghosting_adds_faint_copies_shifted_by_a_fraction_of_the_field_of_view():
    volume = np.zeros((1, 24, 20, 16), dtype=np.float32)
    volume[0, 2:6, 3:9, 4:10] = 1.0  # a bright block in one corner, nothing elsewhere
    ghosting = RandGhosting(prob=1.0, strength=(0.4, 0.4))
    ghosting.set_random_state(3)
    ghosting.randomize()
    ghosting.axis, ghosting.period = 0, 2  # EPI's N/2 ghost along the first axis
    ghosted = np.asarray(ghosting(volume, randomize=False))[0]
    shifted = ghosted[14:18, 3:9, 4:10]  # the block moved by half of 24 voxels
    assert shifted.mean() == pytest.approx(0.2, abs=0.02), "a copy of strength 0.4 / 2 half a field away"
    assert ghosted[2:6, 3:9, 4:10].mean() == pytest.approx(0.8, abs=0.02), "the original loses as much"
    assert ghosted[8:12].max() < 0.02 and ghosted[20:].max() < 0.02, "no copy elsewhere along that axis"
    periods = set()
    for seed in range(20):
        ghosting.set_random_state(seed)
        ghosting.randomize()
        periods.add(ghosting.period)
    assert periods == {2, 3, 4}


@pytest.mark.parametrize("seed", range(6))
def test_slice_gains_change_whole_slices_along_one_axis(seed):
    volume = np.random.default_rng(seed).uniform(0.5, 1.5, size=(1, 12, 14, 16)).astype(np.float32)
    gain = RandSliceGain(prob=1.0, strength=0.3)
    gain.set_random_state(seed)
    ratio = np.asarray(gain(volume))[0] / volume[0]
    axis = gain.axis
    per_slice = np.moveaxis(ratio, axis, 0).reshape(ratio.shape[axis], -1)
    assert np.allclose(per_slice, per_slice[:, :1], atol=1e-5), "one gain per slice"
    assert np.all(np.abs(per_slice[:, 0] - 1.0) <= 0.3 + 1e-5)
    assert np.ptp(per_slice[:, 0]) > 1e-4, "slices differ"


def slice_gain_pattern(gains: np.ndarray) -> str:
    """'each', 'interleaved' or 'slabs': how a vector of per-slice gains is laid out."""
    if len(np.unique(gains)) == len(gains):
        return "each"
    if np.ptp(gains[::2]) == 0 and np.ptp(gains[1::2]) == 0:
        return "interleaved"
    runs = 1 + np.count_nonzero(np.diff(gains))
    assert runs <= 4 and runs == len(np.unique(gains)), f"not contiguous slabs: {gains}"
    return "slabs"


def test_slice_gains_come_per_slice_interleaved_or_per_slab():
    gain = RandSliceGain(prob=1.0, strength=0.3)
    gain.set_random_state(0)
    seen = set()
    for _ in range(30):
        gain.randomize((20, 24, 28))
        assert len(gain.gains) == (20, 24, 28)[gain.axis]
        seen.add(slice_gain_pattern(gain.gains))
    assert seen == {"each", "interleaved", "slabs"}


def whole_volume_sample(root, data, seed=0):
    """One training sample whose patch covers the whole cropped case (padded), and its cached case."""
    cases = discover_cases(root).cases[:1]
    dataset = TrainingDataset(cases, data, (128, 128, 128), with_teacher=False, seed=seed)
    return dataset[(0, 0)], dataset.cache[0]


def padded(volume, shape):
    pads = [((s - n) // 2, s - n - (s - n) // 2) for n, s in zip(volume.shape[1:], shape)]
    return np.pad(volume, [(0, 0), *pads])


def test_without_augmentation_the_student_sees_what_inference_computes(class_map_root):
    data = DataConfig(root=str(class_map_root), workers=0, augmentation=NO_AUGMENTATION)
    sample, cached = whole_volume_sample(class_map_root, data)
    present = tuple(bool(p) for p in sample[PRESENT])
    expected = padded(normalise_sequences(np.asarray(cached[RAW]), present), (128, 128, 128))
    assert np.allclose(np.asarray(sample[STUDENT]), expected, atol=1e-6)


@pytest.mark.parametrize(
    "augmentation",
    [
        replace(NO_AUGMENTATION, intensity_probability=1.0, intensity_inside_brain=True),
        replace(
            NO_AUGMENTATION,
            gamma_probability=1.0,
            bias_probability=1.0,
            blur_probability=1.0,
            noise_probability=1.0,
            thick_slice_probability=1.0,
            low_resolution_probability=1.0,
            intensity_curve_probability=1.0,
            slice_gain_probability=1.0,
            ghosting_probability=1.0,
        ),
    ],
    ids=["scale-shift", "acquisition"],
)
def test_augmented_samples_change_inside_the_brain_only(class_map_root, augmentation):
    data = DataConfig(root=str(class_map_root), workers=0, augmentation=augmentation)
    sample, cached = whole_volume_sample(class_map_root, data)
    present = tuple(bool(p) for p in sample[PRESENT])
    plain = padded(normalise_sequences(np.asarray(cached[RAW]), present), (128, 128, 128))
    student = np.asarray(sample[STUDENT])
    assert np.array_equal(student == 0, plain == 0), "outside the brain and absent sequences stay 0"
    assert not np.allclose(student, plain, atol=1e-3)


def test_synthesised_samples_differ_from_the_case_images_but_keep_its_labels(class_map_root):
    data = DataConfig(root=str(class_map_root), workers=0, augmentation=NO_AUGMENTATION, synthesis=1.0)
    sample, cached = whole_volume_sample(class_map_root, data)
    present = tuple(bool(p) for p in sample[PRESENT])
    plain = padded(normalise_sequences(np.asarray(cached[RAW]), present), (128, 128, 128))
    synthesised = np.asarray(sample[STUDENT])
    assert np.array_equal(np.asarray(sample[LABEL]), padded(np.asarray(cached[LABEL]), (128, 128, 128)))
    assert np.array_equal(plain == 0, synthesised == 0)
    brain = plain != 0
    assert np.abs(plain[brain] - synthesised[brain]).mean() > 0.1


def test_synthesis_needs_class_maps(phantom_root):
    data = DataConfig(root=str(phantom_root), workers=0, synthesis=0.5)
    with pytest.raises(MSTKDError, match="--class-maps"):
        TrainingDataset(discover_cases(phantom_root).cases, data, (32, 32, 32), with_teacher=False)


def test_every_subset_can_be_drawn_from_synthesised_data(class_map_root):
    data = DataConfig(root=str(class_map_root), workers=0, synthesis=1.0)
    dataset = TrainingDataset(discover_cases(class_map_root).cases, data, (32, 32, 32), with_teacher=True)
    drawn = {tuple(bool(p) for p in dataset[(epoch, 0)][PRESENT]) for epoch in range(60)}
    assert len(drawn) > len(SUBSETS) // 2


def test_a_tiny_training_on_synthesised_and_augmented_data_runs(class_map_root, tiny_model_file, tmp_path):
    settings = {
        "train.init_from": tiny_model_file,
        "method": "baseline",
        "data.root": class_map_root,
        "data.workers": 0,
        "data.synthesis": 0.8,
        "data.split_fractions": "[0.67,0.33,0]",
        "train.steps": 3,
        "train.val_subsets": "all",
        **{f"data.augmentation.{name}_probability": 0.5 for name in ACQUISITION + SPATIAL},
    }
    experiment = load_experiment(TINY, [f"{key}={value}" for key, value in settings.items()])
    run = tmp_path / "run"
    assert Trainer(experiment, run).run() == 3
    log = RunFiles(run).log.read_text()
    assert "validation Dice" in log and f"initialised from {tiny_model_file}" in log
    assert load_checkpoint(RunFiles(run).student).metadata["step"] == 3


def test_fine_tuning_refuses_a_model_of_another_architecture(class_map_root, tmp_path):
    demo = Path(__file__).resolve().parents[1] / "Resources" / "models" / "demo.safetensors"
    settings = [f"data.root={class_map_root}", "data.workers=0", "data.split_fractions=[0.67,0.33,0]"]
    settings.append(f"train.init_from={demo}")
    with pytest.raises(MSTKDError, match="another architecture"):
        Trainer(load_experiment(TINY, settings), tmp_path / "run").run()
