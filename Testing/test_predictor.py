"""The Predictor on real phantom files and a real tiny model: grids, labels, volumes, progress, fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from mstkd.conventions import label_convention, region_masks
from mstkd.errors import MSTKDError
from mstkd.files import sha256_of
from mstkd.imageio import image_to_array
from mstkd.inference import predictor as predictor_module
from mstkd.inference.predictor import Predictor, run_with_fallback
from mstkd.phantom import generate_case

CASE = "BraTS2021_00001"


@pytest.fixture(scope="module")
def predictor(tiny_model_file):
    return Predictor(tiny_model_file, device="cpu")


def case_file(root, sequence):
    return root / CASE / f"{CASE}_{sequence}.nii.gz"


def assert_same_geometry(image: sitk.Image, reference: sitk.Image) -> None:
    assert image.GetSize() == reference.GetSize()
    assert image.GetSpacing() == reference.GetSpacing()
    assert image.GetOrigin() == reference.GetOrigin()
    assert image.GetDirection() == reference.GetDirection()


def assert_volumes_match_voxel_counts(result) -> None:
    labels = image_to_array(result.labels)
    values = label_convention(result.label_convention).values
    voxel_ml = float(np.prod(result.labels.GetSpacing())) / 1000.0
    counts = {name.upper(): int((labels == values[name]).sum()) for name in ("ncr", "ed", "et")}
    assert result.volumes_ml["NCR"] == pytest.approx(counts["NCR"] * voxel_ml)
    assert result.volumes_ml["ED"] == pytest.approx(counts["ED"] * voxel_ml)
    assert result.volumes_ml["ET"] == pytest.approx(counts["ET"] * voxel_ml)
    assert result.volumes_ml["WT"] == pytest.approx(sum(counts.values()) * voxel_ml)
    assert result.volumes_ml["TC"] == pytest.approx((counts["NCR"] + counts["ET"]) * voxel_ml)


def test_a_subset_of_files_gives_labels_on_the_reference_grid(predictor, phantom_root, tiny_model_file):
    events = []
    result = predictor.segment(
        {"FLAIR": case_file(phantom_root, "flair"), "t2w": case_file(phantom_root, "t2")},
        progress=events.append,
    )
    assert result.sequences == ("flair", "t2") and result.reference == "flair"
    assert_same_geometry(result.labels, sitk.ReadImage(str(case_file(phantom_root, "flair"))))
    labels = image_to_array(result.labels)
    assert set(np.unique(labels)) <= {0, 1, 2, 4} and result.label_convention == "brats2021"
    assert labels.any(), "a trained model finds some tumour in a phantom"
    assert_volumes_match_voxel_counts(result)
    assert result.model_sha256 == sha256_of(tiny_model_file) and result.device == "cpu"
    assert set(result.timings_s) == {"read", "brain_extraction", "preprocess", "inference", "postprocess"}
    assert result.brain_extraction["method"] == "none" and result.timings_s["brain_extraction"] == 0.0
    assert any("sliding-window inference on cpu" in step for step in result.steps)
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] >= 0.0
    assert {"load", "preflight", "infer", "postprocess"} <= {e.stage for e in events}
    summary = result.summary("out.nii.gz")
    assert summary["model"]["sha256"] == result.model_sha256 and summary["sequences"] == ["flair", "t2"]


def test_images_in_memory_another_reference_and_another_label_convention(predictor, phantom_root):
    images = {s: sitk.ReadImage(str(case_file(phantom_root, s))) for s in ("flair", "t1ce", "t2")}
    native = predictor.segment(images, reference="T2")
    converted = predictor.segment(images, reference="T2", labels="brats2023")
    assert native.reference == converted.reference == "t2"
    assert_same_geometry(converted.labels, images["t2"])
    before, after = image_to_array(native.labels), image_to_array(converted.labels)
    assert np.array_equal(after == 3, before == 4) and not (after == 4).any()
    assert np.array_equal(np.isin(after, [1, 2]), np.isin(before, [1, 2]))
    assert converted.volumes_ml == pytest.approx(native.volumes_ml)
    assert_volumes_match_voxel_counts(converted)


def test_a_clinical_exam_lands_on_the_native_t1ce_grid(predictor):
    # At this small size only T1 and T1ce keep a slice spacing a preflight accepts (FLAIR would be 19 mm).
    case = generate_case(2026, 0, shape=(64, 64, 48), native=True)
    t1ce = case.native_images["t1ce"]
    result = predictor.segment({"t1": case.native_images["t1"], "t1ce": t1ce})
    assert result.reference == "t1ce"
    assert_same_geometry(result.labels, t1ce)
    assert_same_geometry(result.labels, case.native_labels)
    assert any(step.startswith("registered t1 to t1ce") for step in result.steps)
    assert set(np.unique(image_to_array(result.labels))) <= {0, 1, 2, 4}
    assert_volumes_match_voxel_counts(result)


@pytest.mark.parametrize(
    ("sequences", "reference", "message"),
    [
        ({}, None, "No sequence was given"),
        ({"flair": "a.nii.gz", "t2f": "b.nii.gz"}, None, "both name the flair sequence"),
        ({"dwi": "a.nii.gz"}, None, "'dwi' is not a sequence name"),
        ({"flair": "a.nii.gz"}, "t1ce", "reference 't1ce' .* is not among the inputs"),
        ({"flair": "missing.nii.gz"}, None, "Image file not found"),
        ({"flair": 3}, None, "give a file path or a SimpleITK image"),
    ],
)
def test_bad_inputs_are_refused_with_a_message(predictor, sequences, reference, message):
    with pytest.raises(MSTKDError, match=message):
        predictor.segment(sequences, reference=reference)


def out_of_memory_on_cuda(device, windows):
    if device.type == "cuda":
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return f"labels from {device} with {windows} per batch"


def test_out_of_memory_retries_with_one_window_then_on_the_cpu():
    notes = []
    result, device, fallbacks = run_with_fallback(out_of_memory_on_cuda, torch.device("cuda"), notes.append)
    assert result == "labels from cpu with 4 per batch" and device.type == "cpu"
    assert notes == fallbacks and len(fallbacks) == 2
    assert "retried with 1 window per batch" in fallbacks[0] and "retried on the CPU" in fallbacks[1]

    def only_four_is_too_many(device, windows):
        if windows > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return device

    device = run_with_fallback(only_four_is_too_many, torch.device("cuda"), notes.append)[0]
    assert device.type == "cuda"


def test_running_out_of_memory_on_the_cpu_is_a_user_error():
    def no_memory(device, windows):
        raise torch.OutOfMemoryError("DefaultCPUAllocator: not enough memory")

    with pytest.raises(MSTKDError, match="Not enough memory"):
        run_with_fallback(no_memory, torch.device("cpu"), print)


def test_the_predictor_reports_a_fallback_in_its_progress_and_result(predictor, phantom_root, monkeypatch):
    real = predictor_module.predict_labels

    def fake_gpu(network, patch, convention, image, present, device, *args, **kwargs):
        if device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real(network, patch, convention, image, present, device, *args, **kwargs)

    # A machine without a GPU stands in for one: the network stays where it is, "cuda" runs out of memory.
    monkeypatch.setattr(predictor_module, "predict_labels", fake_gpu)
    monkeypatch.setattr(predictor.model.network, "to", lambda device, **layout: predictor.model.network)
    monkeypatch.setattr(predictor, "device", torch.device("cuda"))
    events = []
    result = predictor.segment({"flair": case_file(phantom_root, "flair")}, progress=events.append)
    assert result.device == "cpu" and len(result.fallbacks) == 2
    assert all(note in result.steps for note in result.fallbacks)
    assert sum("ran out of memory" in e.message for e in events) == 2
    assert [note["kind"] for note in result.notes] == ["fallback", "fallback"]
    assert result.summary()["notes"] == result.notes


def test_the_label_rule_is_the_models_unless_the_caller_chooses_another(
    predictor, tiny_model_file, phantom_root
):
    images = {s: case_file(phantom_root, s) for s in ("flair", "t1ce", "t2")}
    own = predictor.segment(images)
    independent = Predictor(tiny_model_file, device="cpu", label_rule="independent").segment(images)
    assert any("label rule exclusive (threshold 0.5)" in step for step in own.steps)
    assert any("label rule independent (threshold 0.5)" in step for step in independent.steps)
    exclusive_regions = region_masks(image_to_array(own.labels), predictor.model.labels)
    independent_regions = region_masks(image_to_array(independent.labels), predictor.model.labels)
    # One threshold decides the whole tumour under both rules; the independent rule only adds
    # core and enhancing voxels (those where NCR or ET is on but ED is more probable).
    assert np.array_equal(exclusive_regions["WT"], independent_regions["WT"])
    for region in ("TC", "ET"):
        assert not (exclusive_regions[region] & ~independent_regions[region]).any()


def test_the_caller_may_mirror_where_the_model_does_not(predictor, tiny_model_file, phantom_root):
    images = {"flair": case_file(phantom_root, "flair")}
    mirrored = Predictor(tiny_model_file, device="cpu", mirror_axes=[0, 2]).segment(images)
    assert any("mirrored along x, z" in step for step in mirrored.steps)
    assert not any("mirrored" in step for step in predictor.segment(images).steps)


@pytest.mark.parametrize("layout", ["default", "channels_last"])
def test_the_network_segments_in_the_memory_layout_asked_for(tiny_model_file, phantom_root, layout):
    chosen = Predictor(tiny_model_file, device="cpu", layout=layout)
    chosen.segment({"flair": case_file(phantom_root, "flair")})
    weights = [p for p in chosen.model.network.parameters() if p.dim() == 5]
    memory_format = torch.channels_last_3d if layout == "channels_last" else torch.contiguous_format
    assert weights and all(w.is_contiguous(memory_format=memory_format) for w in weights)


def test_an_unknown_memory_layout_is_refused_before_the_model_loads(tmp_path):
    with pytest.raises(MSTKDError, match="Unknown memory layout 'nhwc'; choose auto, default, channels_last"):
        Predictor(tmp_path / "no-such-model.safetensors", device="cpu", layout="nhwc")
