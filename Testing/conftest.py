"""Shared fixtures: generated phantom cases (no data set can be downloaded here)."""

from __future__ import annotations

import pytest

from mstkd.phantom.generate import write_phantoms

SMALL_SHAPE = (64, 64, 48)


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory):
    """Six small BraTS-2021-layout phantom cases (64 x 64 x 48, 3.75 mm isotropic voxels)."""
    root = tmp_path_factory.mktemp("phantoms")
    write_phantoms(root, cases=6, seed=11, shape=SMALL_SHAPE, show_progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_model_file(phantom_root, tmp_path_factory):
    """A tiny MST-KDNet student exported by a real (two-step) training run on the phantoms."""
    from pathlib import Path

    from mstkd.experiment import load_experiment
    from mstkd.training.run import RunFiles
    from mstkd.training.trainer import Trainer

    tiny = Path(__file__).resolve().parents[1] / "Training" / "configs" / "tiny.yaml"
    settings = [f"data.root={phantom_root}", "data.workers=0", "train.steps=2", "train.val_subsets=all"]
    run = tmp_path_factory.mktemp("tiny-run")
    Trainer(load_experiment(tiny, settings), run).run()
    return RunFiles(run).student
