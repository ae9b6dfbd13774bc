"""The brain-extraction tools themselves, each imported only when it runs.

Each takes a SimpleITK image and returns its brain mask (uint8, 1 = brain) on the same grid. Both
tools read NIfTI files, so the image goes through a temporary file: the tools reorient it as
they need and hand the mask back in the file's own voxel order.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mstkd.errors import MSTKDError, first_line
from mstkd.preprocess.brain_extraction import Extractor

INPUT_FILE = "image.nii.gz"
MASK_FILE = "mask.nii.gz"


def run_extractor(extractor: Extractor, image: sitk.Image, device: str = "cpu") -> sitk.Image:
    """Run a tool on an image on `device` ('cpu', 'cuda', 'cuda:N', 'mps'); returns the mask on its grid."""
    runners = {"deepbet": _deepbet, "hd-bet": _hd_bet}
    with tempfile.TemporaryDirectory(prefix="mstkd-brain-") as folder:
        source, target = Path(folder) / INPUT_FILE, Path(folder) / MASK_FILE
        sitk.WriteImage(sitk.Cast(image, sitk.sitkFloat32), str(source))
        try:
            runners[extractor.name](source, target, device)
        except MSTKDError:
            raise
        except Exception as error:  # the tool's own failure, told as ours
            raise MSTKDError(
                f"{extractor.name} failed ({type(error).__name__}: {first_line(error)}); give skull-stripped "
                "images, or try another tool (--brain-extraction)."
            ) from None
        if not target.is_file():
            raise MSTKDError(f"{extractor.name} wrote no brain mask; give skull-stripped images.")
        written = sitk.ReadImage(str(target))
    if written.GetSize() != image.GetSize():
        raise MSTKDError(
            f"{extractor.name} returned a mask of size {written.GetSize()} for an image of size "
            f"{image.GetSize()}; give skull-stripped images."
        )
    mask = sitk.GetImageFromArray((sitk.GetArrayViewFromImage(written) > 0).astype(np.uint8))
    mask.CopyInformation(image)
    return mask


def _deepbet(source: Path, target: Path, device: str) -> None:
    from deepbet import BrainExtraction

    BrainExtraction(no_gpu=device == "cpu").run(str(source), mask_path=str(target))


def _hd_bet(source: Path, target: Path, device: str) -> None:
    import torch

    # HD-BET silences stdout while it imports, then sets it to the process's own stdout, which
    # would put its prints among the JSON lines of `--progress jsonl`: keep ours.
    ours = sys.stdout
    try:
        from HD_BET.checkpoint_download import maybe_download_parameters
        from HD_BET.hd_bet_prediction import get_hdbet_predictor, hdbet_predict
    finally:
        sys.stdout = ours

    maybe_download_parameters()
    predictor = get_hdbet_predictor(use_tta=False, device=torch.device(device), verbose=False)
    output = target.with_name("brain.nii.gz")
    hdbet_predict(
        str(source), str(output), predictor, keep_brain_mask=True, compute_brain_extracted_image=False
    )
    # HD-BET names the mask after its output file: <output>_bet.nii.gz.
    output.with_name("brain_bet.nii.gz").replace(target)
