"""File and folder names of the BraTS releases a phantom can be written as."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping

from mstkd.conventions import SEGMENTATION
from mstkd.errors import MSTKDError

NIFTI = ".nii.gz"


@dataclass(frozen=True)
class Layout:
    """How one release names a case's folder and files, and which label convention it uses."""

    name: str
    case_format: str
    separator: str
    suffixes: Mapping[str, str]  # canonical sequence (or 'seg') -> file-name suffix
    labels: str

    def case_id(self, index: int) -> str:
        """The id (and folder name) of case number `index`."""
        return self.case_format.format(index=index)

    def file_name(self, case_id: str, name: str) -> str:
        """The file name of a sequence (canonical name) or of the segmentation ('seg')."""
        return f"{case_id}{self.separator}{self.suffixes[name]}{NIFTI}"


LAYOUTS: Dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            name="brats2021",
            case_format="BraTS2021_{index:05d}",
            separator="_",
            suffixes={"flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2", SEGMENTATION: "seg"},
            labels="brats2021",
        ),
        Layout(
            name="brats2023",
            case_format="BraTS-GLI-{index:05d}-000",
            separator="-",
            suffixes={"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w", SEGMENTATION: "seg"},
            labels="brats2023",
        ),
    )
}
DEFAULT_LAYOUT = "brats2021"


def get_layout(name: str) -> Layout:
    """Look up a layout by name, or raise naming the valid ones."""
    try:
        return LAYOUTS[name.lower()]
    except KeyError:
        raise MSTKDError(f"Unknown layout '{name}'; choose one of {', '.join(LAYOUTS)}.") from None
