"""Test-time mirroring: each window's scores averaged with those of its mirror images, set per model."""

from __future__ import annotations

import argparse

import pytest
import torch
from torch import nn

from mstkd.checkpoint import load_checkpoint
from mstkd.cli.main import main
from mstkd.cli.options import mirror_axes
from mstkd.experiment.sections import OutputConfig
from mstkd.inference.model_file import load_trained_model
from mstkd.prediction.labelrule import describe_output
from mstkd.prediction.window import mirrored
from mstkd.trust import VALIDATION_KEY


def _lopsided_network() -> nn.Module:
    """A network whose scores change when its input is mirrored (random, uneven kernels)."""
    torch.manual_seed(4)
    return nn.Sequential(nn.Conv3d(4, 6, 3, padding=1), nn.ReLU(), nn.Conv3d(6, 3, 3, padding=1)).eval()


def test_mirroring_averages_the_scores_of_every_mirror_image_mirrored_back():
    network = _lopsided_network()
    window = torch.randn(2, 4, 8, 10, 6, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        plain = network(window)
        along_x = mirrored(network, (0,))(window)
        along_xz = mirrored(network, (0, 2))(window)
        x_back = network(window.flip(2)).flip(2)
        z_back = network(window.flip(4)).flip(4)
        xz_back = network(window.flip((2, 4))).flip((2, 4))
    assert not torch.allclose(plain, x_back, atol=1e-3), "the network must not be mirror-symmetric already"
    assert torch.allclose(along_x, (plain + x_back) / 2, atol=1e-6)
    assert torch.allclose(along_xz, (plain + x_back + z_back + xz_back) / 4, atol=1e-6)
    assert mirrored(network, ()) is network


def test_the_axes_are_written_as_letters_on_the_command_line():
    assert mirror_axes("x") == (0,)
    assert mirror_axes("ZyX") == (2, 1, 0)
    assert mirror_axes("none") == ()
    for bad in ("", "xx", "xw", "0"):
        with pytest.raises(argparse.ArgumentTypeError, match="among x, y and z"):
            mirror_axes(bad)


def test_a_report_says_which_axes_were_mirrored():
    assert "mirrored" not in describe_output(OutputConfig(label_rule="exclusive"))
    assert describe_output(OutputConfig(label_rule="exclusive", mirror_axes=(2, 0))).endswith(
        "mirrored along x, z"
    )


def test_evaluate_model_mirrors_on_request_and_its_annotated_copy_keeps_the_setting(
    tiny_model_file, phantom_root, tmp_path, capsys
):
    arguments = ["--checkpoint", str(tiny_model_file), "--data", str(phantom_root), "--device", "cpu"]
    arguments += ["--subsets", "all"]
    assert main(["evaluate-model", *arguments, "--out", str(tmp_path / "plain")]) == 0
    plain = capsys.readouterr().out
    copy = tmp_path / "annotated.safetensors"
    mirrored_run = ["--out", str(tmp_path / "mirrored"), "--mirror-axes", "x", "--model-out", str(copy)]
    assert main(["evaluate-model", *arguments, *mirrored_run]) == 0
    mirrored_table = capsys.readouterr().out
    assert "mirrored along x" in mirrored_table and "mirrored" not in plain
    annotated = load_trained_model(copy, torch.device("cpu"))
    assert annotated.output.mirror_axes == (0,)
    assert annotated.metadata[VALIDATION_KEY]["dice"]["flair,t1,t1ce,t2"]
    source, written = load_checkpoint(tiny_model_file), load_checkpoint(copy)
    assert VALIDATION_KEY not in source.metadata, "the evaluated file itself is untouched"
    assert source.metadata["experiment"]["output"]["mirror_axes"] == []
    assert all(torch.equal(tensor, written.state_dict[name]) for name, tensor in source.state_dict.items())


def test_evaluate_model_refuses_bad_axes_and_mirroring_under_the_reference_protocol(
    tiny_model_file, phantom_root, capsys
):
    arguments = ["--checkpoint", str(tiny_model_file), "--data", str(phantom_root), "--device", "cpu"]
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate-model", *arguments, "--mirror-axes", "xw"])
    assert exit_info.value.code == 2 and "among x, y and z" in capsys.readouterr().err
    status = main(["evaluate-model", *arguments, "--protocol", "reference", "--mirror-axes", "x"])
    assert status == 2 and "--mirror-axes" in capsys.readouterr().err


def test_segment_mirrors_on_request_and_a_kept_predictor_keeps_the_model_file_setting(
    tiny_model_file, phantom_root, tmp_path
):
    import json

    from mstkd.cli.main import build_parser
    from mstkd.cli.segment import run as segment
    from mstkd.cli.serve import PredictorCache

    case = phantom_root / "BraTS2021_00000" / "BraTS2021_00000"
    kept = PredictorCache()
    steps = {}
    for axes in ("xz", None, "none"):
        summary = tmp_path / f"{axes}.json"
        argv = ["segment", "--flair", f"{case}_flair.nii.gz", "-o", str(tmp_path / f"{axes}.nii.gz")]
        argv += ["--summary", str(summary), "--model", str(tiny_model_file), "--device", "cpu"]
        argv += [] if axes is None else ["--mirror-axes", axes]
        args = build_parser(["segment"]).parse_args(argv)
        assert segment(args, load_predictor=kept) == 0
        steps[axes] = next(s for s in json.loads(summary.read_text())["steps"] if "sliding-window" in s)
    assert "mirrored along x, z" in steps["xz"]
    # The request after --mirror-axes xz segments as the model file says (one pass): the kept
    # predictor was not changed by it.
    assert "mirrored" not in steps[None] and "mirrored" not in steps["none"]
    assert kept.predictor.model.output.mirror_axes == ()
