"""A DICOM study into the scene: its FLAIR, T1, T1Gd and T2 series chosen from their tags, then loaded.

The choice is the engine's (mstkd.dicom_series: descriptions, acquisition tags, orientation;
localisers, diffusion, perfusion and derived series skipped); a user changes it with
`overrides` (sequence -> series UID, or None to leave a sequence out). Only the chosen series
are loaded. The DICOM database and the loading function are passed in: in Slicer, the
application's ctkDICOMDatabase and DICOMUtils.loadSeriesByUID; in tests, stand-ins over real files.
"""

from __future__ import annotations

import os
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from mstkd.conventions import DISPLAY_NAMES, SequenceMap
from mstkd.dicom_series import SeriesChoice, SeriesInfo, choose_series, series_info
from mstkd.errors import MSTKDError

# Loads one series (by UID) into the scene; returns the IDs of the nodes it made.
LoadSeries = Callable[[str], Sequence[str]]


def database_series(database, folder: str) -> List[SeriesInfo]:
    """The series of a DICOM database whose files lie in `folder` or below it (whole path components)."""
    root = _normalised(folder)
    found = []
    for patient in database.patients():
        for study in database.studiesForPatient(patient):
            for uid in database.seriesForStudy(study):
                files = [f for f in database.filesForSeries(uid) if is_inside(f, root)]
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


def load_dicom_study(
    scene,
    database,
    folder: str,
    load_series: LoadSeries,
    overrides: Optional[Mapping[str, Optional[str]]] = None,
) -> Tuple[SequenceMap[object], SeriesChoice]:
    """Choose the study's series (see the module) and load them; returns their volumes and the choice."""
    study = database_series(database, folder)
    if not study:
        raise MSTKDError(f"No DICOM series of {folder} is in the DICOM database; import the folder first.")
    choice = choose_series(study, overrides)
    if not choice.chosen:
        raise MSTKDError(
            f"No series in {folder} is a FLAIR, T1, T1Gd or T2 volume ({len(study)} skipped); "
            "load the series by hand and choose the volumes."
        )
    nodes = {}
    for sequence, series in choice.sequences.items():
        volumes = [scene.GetNodeByID(i) for i in load_series(series.uid)]
        volumes = [v for v in volumes if v is not None and v.IsA("vtkMRMLScalarVolumeNode")]
        if not volumes:
            raise MSTKDError(
                f"Slicer could not load {series.label} as a volume for {DISPLAY_NAMES[sequence]}."
            )
        nodes[sequence] = volumes[0]
    return SequenceMap(nodes), choice


def _normalised(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


def _value(database, path: str, tag: str) -> str:
    """A tag's value from the database, which spells '0008|103e' as '0008,103E'."""
    return database.fileValue(path, tag.replace("|", ",").upper())
