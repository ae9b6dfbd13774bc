"""A DICOM study into the scene (MSTKDSegmentLib.dicom) from real DICOM files written by SimpleITK:
what the loader does around the series choice (test_dicom_series.py tests the choice itself).

Slicer's DICOM database (ctkDICOMDatabase) exists only in the application: a small database over
the same files, reading their tags with SimpleITK, stands in for it, with DICOMUtils' import and
load functions. The scene, the volume nodes and the loader are the real ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("trame_slicer")

from slicer_helpers import tumour_array  # noqa: E402

from mstkd.errors import MSTKDError  # noqa: E402

STUDY = "1.2.826.0.1.3680043.8.498.1"
SLICES = 12  # a volume, not a localiser (mstkd.dicom_series.MIN_SLICES)


def write_series(folder: Path, number: int, description: str, modality: str = "MR") -> None:
    """A DICOM series of SLICES slices of 8 x 10 pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    volume = sitk.GetImageFromArray(tumour_array((SLICES, 10, 8)))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series = f"{STUDY}.{number}"
    for k in range(volume.GetDepth()):
        image = volume[:, :, k]
        tags = {
            "0010|0020": "PATIENT-1",
            "0020|000d": STUDY,
            "0020|000e": series,
            "0008|0018": f"{series}.{k + 1}",
            "0008|0060": modality,
            "0008|103e": description,
            "0020|0011": str(number),
            "0020|0013": str(k + 1),
            "0020|0032": f"0\\0\\{1.5 * k}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
        }
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"IM{number:02d}{k:03d}.dcm"))
        writer.Execute(image)


def tag(path: str, key: str) -> str:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.ReadImageInformation()
    key = key.replace(",", "|").lower()
    return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""


class FileDatabase:
    """The ctkDICOMDatabase methods the loader uses, over the DICOM files imported into it."""

    isOpen = True

    def __init__(self) -> None:
        self.files = []

    def import_folder(self, folder, database) -> None:  # DICOMUtils.importDicom(folder, database)
        assert database is self
        self.files += sorted(str(p) for p in Path(folder).rglob("*.dcm"))

    def patients(self):
        return sorted({tag(f, "0010,0020") for f in self.files})

    def studiesForPatient(self, patient):
        return sorted({tag(f, "0020,000D") for f in self.files if tag(f, "0010,0020") == patient})

    def seriesForStudy(self, study):
        return sorted({tag(f, "0020,000E") for f in self.files if tag(f, "0020,000D") == study})

    def filesForSeries(self, uid):
        return [f for f in self.files if tag(f, "0020,000E") == uid]

    def fileValue(self, path, key):
        return tag(path, key)

    def fileForInstance(self, uid):
        return next((f for f in self.files if tag(f, "0008,0018") == uid), "")


@pytest.fixture
def app():
    from trame_slicer.core import SlicerApp

    return SlicerApp()


@pytest.fixture
def database():
    return FileDatabase()


def loader(app, database, tmp_path):
    """A DicomLoader whose load_series reads a series as Slicer's DICOM plugin would: a volume named
    after the series number, remembering the instances it came from."""
    from MSTKDSegmentLib import DicomLoader
    from MSTKDSegmentLib.volumes import load_volume_file

    def load_series(uids):
        ids = []
        for uid in uids:
            files = database.filesForSeries(uid)
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(sorted(files, key=lambda f: int(tag(f, "0020,0013"))))
            path = tmp_path / f"{uid}.nrrd"
            sitk.WriteImage(reader.Execute(), str(path))
            node = load_volume_file(
                app.scene, app.volumes_logic, path, f"Series {tag(files[0], '0020,0011')}"
            )
            node.SetAttribute("DICOM.instanceUIDs", " ".join(tag(f, "0008,0018") for f in files))
            ids.append(node.GetID())
        return ids

    return DicomLoader(app.scene, database, database.import_folder, load_series)


def test_the_mr_series_of_a_folder_are_loaded_and_named_by_their_descriptions(app, database, tmp_path):
    study = tmp_path / "study"
    write_series(study / "a", 3, "AX FLAIR")
    write_series(study / "b", 5, "AX T1 POST GAD")
    write_series(study / "c", 1, "Localizer")
    write_series(study / "d", 7, "AX T2", modality="CT")  # not an MR series: never loaded
    write_series(tmp_path / "elsewhere", 9, "AX T2")  # in the database, but not in this folder
    database.import_folder(tmp_path / "elsewhere", database)

    nodes, choice = loader(app, database, tmp_path).load(str(study))

    assert list(nodes) == ["flair", "t1ce"]
    assert nodes["flair"].GetName().startswith("Series 3")  # recognised from the series description
    assert app.scene.GetNodesByClass("vtkMRMLScalarVolumeNode").GetNumberOfItems() == 2  # only those
    assert sorted(s.number for s in choice.skipped) == [1, 7]  # the localizer and the CT series
    assert any("modality CT" in line for line in choice.describe())
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"{STUDY}.5.nrrd"))),
        tumour_array((SLICES, 10, 8)),
    )
    from MSTKDSegmentLib import series_descriptions

    assert series_descriptions(nodes["t1ce"], database) == ["AX T1 POST GAD"]
    assert series_descriptions(nodes["t1ce"], None) == []


def test_the_series_choice_can_be_replaced_and_nothing_known_is_an_error(app, database, tmp_path):
    study = tmp_path / "study"
    write_series(study, 3, "AX FLAIR")
    write_series(study, 4, "sag T2 SPACE")
    nodes, _ = loader(app, database, tmp_path).load(str(study), {"flair": None})
    assert list(nodes) == ["t2"]

    unknown = tmp_path / "unknown"
    write_series(unknown, 1, "Localizer")
    with pytest.raises(MSTKDError, match="No series in .* is a FLAIR, T1, T1Gd or T2 volume"):
        loader(app, FileDatabase(), tmp_path).load(str(unknown))
