"""Whether a sequence is already skull-stripped: the rule `--brain-extraction auto` goes by.

A sequence counts as skull-stripped when its voxels are exactly 0 outside a region (its
support) of at most MAX_BRAIN_ML. Brain-extraction tools, and BraTS, write exactly 0 outside the
brain, and a brain with the CSF around it holds about 1.1 to 1.9 L in adults. A scan that was not
stripped shows the head: the scanner's background is Rician noise, never exactly 0, so the
support is the whole field of view (a head scan's field of view holds 4 L or more); and where a
converter writes exactly 0 in the air, the head with its scalp, skull and neck still fills well
over 2.5 L. A partial field of view of a stripped brain (a slab) has a smaller support still.

What can fool it: a thin slab of an unstripped head whose air was written as exactly 0 (choose
an extraction tool by name then); a stripped image of an unusually large brain (above
MAX_BRAIN_ML with its CSF) reads as unstripped, and a tool runs on it, which does no harm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from mstkd.conventions import DISPLAY_NAMES

# Above the largest adult intracranial volumes (about 1.9 L), below any head with its skull.
MAX_BRAIN_ML = 2200.0


@dataclass(frozen=True)
class Support:
    """How much of a sequence's field of view is not exactly 0, in millilitres."""

    sequence: str
    support_ml: float
    field_of_view_ml: float

    @property
    def stripped(self) -> bool:
        """True when the non-zero voxels fit in a brain: the image is skull-stripped."""
        return self.support_ml <= MAX_BRAIN_ML

    def describe(self) -> str:
        """One line: the figures and the verdict."""
        verdict = "skull-stripped" if self.stripped else "not skull-stripped"
        return (
            f"{DISPLAY_NAMES[self.sequence]} is non-zero over {self.support_ml:.0f} mL of "
            f"{self.field_of_view_ml:.0f} mL ({verdict}: a brain holds at most {MAX_BRAIN_ML:.0f} mL)"
        )


def measure_support(sequence: str, image: sitk.Image) -> Support:
    """The volume of an image's non-zero voxels and of its whole field of view."""
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    array = sitk.GetArrayViewFromImage(image)
    return Support(sequence, float(np.count_nonzero(array)) * voxel_ml, float(array.size) * voxel_ml)
