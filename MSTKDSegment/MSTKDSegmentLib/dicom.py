"""A DICOM study into the scene: import the folder into a DICOM database, choose its FLAIR, T1, T1Gd
and T2 series from their tags, and load only those.

The choice is the engine's (mstkd.dicom_series: descriptions, acquisition tags, orientation;
non-MR series, localisers, diffusion, perfusion and derived series skipped); a user changes it
with `overrides` (sequence -> series UID, or None to leave a sequence out). The database and
DICOMUtils' functions are passed in, so that this runs in Slicer (the application's database, or a
temporary one) and in tests (a database over real DICOM files).
"""

from __future__ import annotations

import os
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from mstkd.conventions import DISPLAY_NAMES, SequenceMap
from mstkd.dicom_series import TAGS, SeriesChoice, SeriesInfo, choose_series, series_info
from mstkd.errors import MSTKDError

# Slicer's DICOM plugins record the instances a volume was loaded from in this attribute.
INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"
Overrides = Mapping[str, Optional[str]]


class DicomLoader:
    """Loads the MRI sequences of a DICOM folder.

    `database` is a ctkDICOMDatabase (or anything with its methods patients, studiesForPatient,
    seriesForStudy, filesForSeries, fileValue, fileForInstance, isOpen); `import_folder(folder,
    database)` and `load_series(uids) -> node IDs` are DICOMUtils.importDicom and loadSeriesByUID
    in Slicer; the nodes land in `scene`.
    """

    def __init__(
        self,
        scene,
        database,
        import_folder: Callable[[str, object], object],
        load_series: Callable[[List[str]], Sequence[str]],
    ) -> None:
        self.scene = scene
        self.database = database
        self.import_folder = import_folder
        self.load_series = load_series

    def load(
        self, folder: str, overrides: Optional[Overrides] = None
    ) -> Tuple[SequenceMap[object], SeriesChoice]:
        """Import `folder`, choose its series and load them; returns each sequence's volume and the choice
        (what was chosen and why, for the log)."""
        self.import_folder(folder, self.database)
        study = database_series(self.database, folder)
        if not study:
            raise MSTKDError(f"No DICOM series of {folder} is in the DICOM database; check the folder.")
        choice = choose_series(study, overrides)
        if not choice.chosen:
            raise MSTKDError(
                f"No series in {folder} is a FLAIR, T1, T1Gd or T2 volume ({len(study)} skipped); "
                "load the series by hand and choose the volumes."
            )
        nodes = {}
        for sequence, series in choice.sequences.items():
            volumes = [self.scene.GetNodeByID(node_id) for node_id in self.load_series([series.uid])]
            volumes = [v for v in volumes if v is not None and v.IsA("vtkMRMLScalarVolumeNode")]
            if not volumes:
                raise MSTKDError(
                    f"Slicer could not load {series.label} as a volume for {DISPLAY_NAMES[sequence]}."
                )
            nodes[sequence] = volumes[0]
        return SequenceMap(nodes), choice


def database_series(database, folder: str) -> List[SeriesInfo]:
    """The series of a DICOM database whose files lie in `folder` or below it (whole path components)."""
    found = []
    for patient in database.patients():
        for study in database.studiesForPatient(patient):
            for uid in database.seriesForStudy(study):
                files = [f for f in database.filesForSeries(uid) if is_inside(f, folder)]
                if files:
                    found.append(series_info(uid, files, lambda path, tag: _value(database, path, tag)))
    return found


def is_inside(path: str, folder: str) -> bool:
    """True when `path` lies in `folder` or below it: 'case1' holds 'case1/x', not 'case10/x'."""
    path, folder = _normalised(path), _normalised(folder)
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives
        return False


def series_descriptions(node, database: Optional[object]) -> List[str]:
    """The series description of a volume loaded from DICOM, when `database` (open) knows it."""
    uids = (node.GetAttribute(INSTANCE_UIDS_ATTRIBUTE) or "").split()
    if not uids or database is None or not database.isOpen:
        return []
    path = database.fileForInstance(uids[0])
    return [_value(database, path, TAGS["description"])] if path else []


def _normalised(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


def _value(database, path: str, tag: str) -> str:
    """A tag's value from the database, which spells '0008|103e' as '0008,103E'."""
    return database.fileValue(path, tag.replace("|", ",").upper())
