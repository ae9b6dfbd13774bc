"""A DICOM study into the scene: import the folder into a DICOM database, load its MR series, and
recognise each one's sequence from its series description.

The database and DICOMUtils' functions are passed in, so that this runs in Slicer (the
application's database, or a temporary one) and in tests (a database over real DICOM files).
Which series are loaded is `choose_series`'s decision, a separate step so that a choice by the
user can replace it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from mstkd.errors import MSTKDError
from MSTKDSegmentLib.sequences import assign_sequences

SERIES_DESCRIPTION_TAG = "0008,103E"
MODALITY_TAG = "0008,0060"
# Slicer's DICOM plugins record the instances a volume was loaded from in this attribute.
INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"


@dataclass(frozen=True)
class DicomSeries:
    """One series of the imported folder, as the database knows it."""

    uid: str
    description: str
    modality: str
    files: Tuple[str, ...]


def choose_series(series: Sequence[DicomSeries]) -> List[DicomSeries]:
    """The series worth loading: the MR ones (all of them when no series states its modality)."""
    magnetic = [s for s in series if s.modality.upper() == "MR"]
    return magnetic or [s for s in series if not s.modality]


class DicomLoader:
    """Loads the MRI sequences of a DICOM folder.

    `database` is a ctkDICOMDatabase (or anything with its methods patients, studiesForPatient,
    seriesForStudy, filesForSeries, fileValue, fileForInstance, isOpen); `import_folder(folder,
    database)` and `load_series(uids) -> node IDs` are DICOMUtils.importDicom and loadSeriesByUID
    in Slicer; the nodes land in `scene`; `choose` picks the series to load.
    """

    def __init__(
        self,
        scene,
        database,
        import_folder: Callable[[str, object], object],
        load_series: Callable[[List[str]], Sequence[str]],
        choose: Callable[[Sequence[DicomSeries]], List[DicomSeries]] = choose_series,
    ) -> None:
        self.scene = scene
        self.database = database
        self.import_folder = import_folder
        self.load_series = load_series
        self.choose = choose

    def load(self, folder: str) -> Dict[str, object]:
        """Import `folder`, load its chosen series and return the volume of each recognised sequence."""
        self.import_folder(folder, self.database)
        chosen = self.choose(self.series_in(folder))
        ids = self.load_series([s.uid for s in chosen]) if chosen else []
        nodes = [self.scene.GetNodeByID(node_id) for node_id in ids]
        volumes = [n for n in nodes if n is not None and n.IsA("vtkMRMLScalarVolumeNode")]
        found = assign_sequences(volumes, self.descriptions)
        if not found:
            raise MSTKDError(
                f"No series in {folder} names an MRI sequence the module knows; choose the volumes by hand."
            )
        return found

    def series_in(self, folder: str) -> List[DicomSeries]:
        """The database's series whose files lie in `folder`."""
        root = os.path.normcase(os.path.abspath(folder))
        found = []
        for patient in self.database.patients():
            for study in self.database.studiesForPatient(patient):
                for uid in self.database.seriesForStudy(study):
                    files = tuple(self.database.filesForSeries(uid))
                    if files and _inside(files[0], root):
                        found.append(
                            DicomSeries(
                                uid,
                                self.database.fileValue(files[0], SERIES_DESCRIPTION_TAG) or "",
                                self.database.fileValue(files[0], MODALITY_TAG) or "",
                                files,
                            )
                        )
        return found

    def descriptions(self, node) -> List[str]:
        """The series description of a volume loaded from DICOM, when the database knows it."""
        return series_descriptions(node, self.database)


def series_descriptions(node, database: Optional[object]) -> List[str]:
    """The series description of a volume loaded from DICOM, when `database` (open) knows it."""
    uids = (node.GetAttribute(INSTANCE_UIDS_ATTRIBUTE) or "").split()
    if not uids or database is None or not database.isOpen:
        return []
    path = database.fileForInstance(uids[0])
    return [database.fileValue(path, SERIES_DESCRIPTION_TAG)] if path else []


def _inside(path: str, root: str) -> bool:
    path = os.path.normcase(os.path.abspath(path))
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
