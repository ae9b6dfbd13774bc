"""A whole tumour too large to believe: the warning a result gets when it fills much of the brain.

Gliomas with their oedema seldom reach a third of the brain. A label map filling more usually means
the model misread the images (a contrast it never saw, such as a FLAIR with hardly any grey/white
contrast, where it can take the deep white matter for oedema) or that the images are not what they
seem (cropped around the tumour, another organ, a sequence assigned to the wrong slot). The result
is kept and shown; the warning says it should not be used as it is.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

# Above this share of the brain's voxels, a whole tumour is reported as implausible.
IMPLAUSIBLE_SHARE = 0.4


def extent_warning(tumour: np.ndarray, brain: np.ndarray) -> Optional[str]:
    """A warning when the `tumour` mask covers over IMPLAUSIBLE_SHARE of the `brain` mask (same grid)."""
    brain_voxels = int(np.count_nonzero(brain))
    if brain_voxels == 0:
        return None
    share = np.count_nonzero(tumour & brain) / brain_voxels
    if share <= IMPLAUSIBLE_SHARE:
        return None
    return (
        f"The whole tumour fills {share:.0%} of the brain, far more than gliomas do: the model has "
        "probably misread these images (a contrast it was not trained on, images cropped around the "
        "tumour, or a sequence given as another). Check each sequence's assignment and the result "
        "before using it."
    )
