"""The series of a DICOM study chosen as FLAIR, T1, T1Gd and T2 from their tags (mstkd.dicom_series),
and loaded into a real MRML scene (MSTKDSegmentLib.dicom).

The study is written here with SimpleITK (no real study can be downloaded): eleven series with the
tags a Siemens 3 T brain-tumour protocol writes, small images. Slicer's DICOM database exists only
in the application; a small database over the same files stands in for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import SimpleITK as sitk

from mstkd.dicom_series import choose_series, classify, read_series_image, read_study, read_tag
from mstkd.errors import MSTKDError

STUDY_UID = "1.2.826.0.1.3680043.8.498.77"
AXIAL = "1\\0\\0\\0\\1\\0"
SAGITTAL = "0\\1\\0\\0\\0\\-1"
# number: (description, slices, orientation, slice mm, tags) as the scanner wrote them.
PROTOCOL: Dict[int, tuple] = {
    1: ("localizer", 3, AXIAL, 7.0, {"0008|0008": "ORIGINAL\\PRIMARY\\LOCALIZER", "0018|0020": "GR"}),
    2: ("t2_tse_tra", 12, AXIAL, 5.0, {"0018|0020": "SE", "0018|0080": "5000", "0018|0081": "100"}),
    3: (
        "t2_tirm_tra_dark-fluid",
        12,
        AXIAL,
        5.0,
        {"0018|0020": "SE\\IR", "0018|0080": "9000", "0018|0081": "85", "0018|0082": "2500"},
    ),
    4: (
        "ep2d_diff_3scan_trace_p2",
        12,
        AXIAL,
        5.0,
        {"0008|0008": "ORIGINAL\\PRIMARY\\DIFFUSION\\TRACEW", "0018|0020": "EP", "0018|9087": "1000"},
    ),
    5: ("ep2d_diff_3scan_trace_p2_ADC", 12, AXIAL, 5.0, {"0008|0008": "DERIVED\\PRIMARY\\DIFFUSION\\ADC"}),
    6: (
        "t1_mprage_sag_p2_iso",
        16,
        SAGITTAL,
        1.0,
        {"0018|0020": "GR\\IR", "0018|0080": "2300", "0018|0081": "2.3", "0018|0082": "900"},
    ),
    7: ("ep2d_perf", 12, AXIAL, 5.0, {"0018|0020": "EP", "0020|0105": "50", "0018|0010": "Gadovist"}),
    8: (
        "t1_mprage_sag_p2_iso",  # the same protocol as series 6, after contrast: only the agent tells
        16,
        SAGITTAL,
        1.0,
        {
            "0018|0020": "GR\\IR",
            "0018|0080": "2300",
            "0018|0081": "2.3",
            "0018|0082": "900",
            "0018|0010": "Gadovist",
        },
    ),
    9: (
        "t1_mprage_sag_p2_iso_MPR_tra",
        12,
        AXIAL,
        5.0,
        {"0008|0008": "DERIVED\\SECONDARY\\MPR", "0018|0010": "Gadovist"},
    ),
    10: (
        "t1_se_tra_post",
        12,
        AXIAL,
        5.0,
        {"0018|0020": "SE", "0018|0080": "550", "0018|0081": "9", "0018|0010": "Gadovist"},
    ),
    11: (
        "",
        12,
        AXIAL,
        5.0,
        {"0018|0020": "GR", "0018|0080": "800", "0018|0081": "20", "0008|103e": "SWI_mag"},
    ),
}
EXPECTED = {"flair": 3, "t1": 6, "t1ce": 8, "t2": 2}


def series_uid(case: str, number: int) -> str:
    return f"{STUDY_UID}.{case[-1]}{len(case)}.{number}"


def write_study(folder: Path, case: str = "case1", numbers=tuple(PROTOCOL)) -> Path:
    """Write the protocol's series (each in its own folder, as PACS exports do) for one patient."""
    for number in numbers:
        description, slices, orientation, thickness, tags = PROTOCOL[number]
        row = np.asarray([float(v) for v in orientation.split("\\")[:3]])
        column = np.asarray([float(v) for v in orientation.split("\\")[3:]])
        normal = np.cross(row, column)
        uid = series_uid(case, number)
        for k in range(slices):
            pixels = np.full((10, 8), 100 * number, dtype=np.int16)
            pixels[3:6, 2:5] += k
            image = sitk.GetImageFromArray(pixels[None])  # one slice, so that its thickness is written
            image.SetSpacing((1.0, 1.0, thickness))
            position = normal * thickness * k
            meta = {
                "0010|0020": case,
                "0020|000d": STUDY_UID + "." + case[-1],
                "0020|000e": uid,
                "0008|0018": f"{uid}.{k + 1}",
                "0008|0060": "MR",
                "0008|103e": description,
                "0020|0011": str(number),
                "0020|0013": str(k + 1),
                "0020|0032": "\\".join(f"{p:g}" for p in position),
                "0020|0037": orientation,
                "0018|0050": f"{thickness:g}",
                "0028|0030": "1\\1",
                **tags,
            }
            for tag, value in meta.items():
                image.SetMetaData(tag, value)
            writer = sitk.ImageFileWriter()
            writer.KeepOriginalImageUIDOn()
            path = folder / case / f"S{number:02d}" / f"IM{k + 1:04d}.dcm"
            path.parent.mkdir(parents=True, exist_ok=True)
            writer.SetFileName(str(path))
            writer.Execute(image)
    return folder / case


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return write_study(tmp_path_factory.mktemp("dicom"))


def numbers(chosen) -> Dict[str, int]:
    return {sequence: series.number for sequence, series in chosen.items()}


def test_the_four_sequences_are_chosen_from_the_tags_and_the_rest_skipped_with_reasons(study):
    series = read_study(study)
    assert [s.number for s in series] == list(PROTOCOL)
    choice = choose_series(series)
    assert numbers(choice.sequences) == EXPECTED
    reasons = {s.number: choice.reasons[s.uid] for s in choice.skipped}
    assert set(reasons) == {1, 4, 5, 7, 9, 11}
    assert reasons[1] == "localiser"
    assert reasons[4].startswith("diffusion") and reasons[5].startswith("diffusion")
    assert reasons[7].startswith("perfusion")
    assert reasons[9].startswith("derived")
    assert "susceptibility" in reasons[11]
    # FLAIR's description names T2 and dark fluid: the words cancel out, its tags decide.
    assert "SE/IR, TR 9000 ms, TE 85 ms, TI 2500 ms" in choice.reasons[choice.chosen["flair"].uid]
    assert "contrast agent Gadovist" in choice.reasons[choice.chosen["t1ce"].uid]
    # Two series fit T1Gd; the 1 mm sagittal one beats the 5 mm axial one.
    assert [s.number for s in choice.candidates["t1ce"]] == [8, 10]
    lines = choice.describe()
    assert lines[0].startswith('FLAIR: series 3 "t2_tirm_tra_dark-fluid"')
    assert 'not used for T1Gd: series 10 "t1_se_tra_post" (another series fits better)' in lines
    assert 'skipped: series 1 "localizer" (localiser)' in lines

    volume = read_series_image(choice.chosen["t1"])
    assert volume.GetSize() == (8, 10, 16)
    np.testing.assert_allclose(volume.GetDirection(), [0, 0, -1, 1, 0, 0, 0, -1, 0], atol=1e-6)
    assert sitk.GetArrayFromImage(volume)[5, 4, 3] == 600 + 5  # slices in order of position


def test_the_user_changes_the_choice(study):
    series = read_study(study)
    by_number = {s.number: s.uid for s in series}
    choice = choose_series(series, {"t1ce": by_number[10], "t1": None})
    assert numbers(choice.sequences) == {"flair": 3, "t1ce": 10, "t2": 2}
    assert "chosen by hand" not in choice.describe()[1]  # series 10's own reason is kept
    again = choice.assign("t2", by_number[11], series)  # any series, even a skipped one
    assert again.chosen["t2"].number == 11 and choice.chosen["t2"].number == 2
    with pytest.raises(MSTKDError, match="No series 9.9 in this study"):
        choice.assign("t2", "9.9", series)


@pytest.mark.parametrize(
    "description, tags, expected",
    [
        ("AX FLAIR", {}, "flair"),
        ("", {"scanning_sequence": ("SE", "IR"), "echo_time": 120.0, "inversion_time": 2200.0}, "flair"),
        ("", {"scanning_sequence": ("SE",), "echo_time": 95.0, "repetition_time": 4000.0}, "t2"),
        ("", {"scanning_sequence": ("SE",), "echo_time": 12.0, "repetition_time": 600.0}, "t1"),
        ("", {"echo_time": 12.0, "repetition_time": 600.0, "contrast_agent": "Dotarem"}, "t1ce"),
        ("AX T1 POST", {}, "t1ce"),
        ("sag 3D T1", {"contrast_agent": "MultiHance"}, "t1ce"),
        ("", {"echo_time": 40.0, "repetition_time": 3000.0}, None),  # proton density: none of the four
        ("AX T2*", {"echo_time": 20.0, "repetition_time": 600.0}, None),
    ],
)
def test_sequences_from_descriptions_and_acquisition_tags(description, tags, expected):
    from mstkd.dicom_series import SeriesInfo

    info = SeriesInfo("1.2.3", description, 1, "MR", files=tuple(f"f{i}" for i in range(20)), **tags)
    assert classify(info)[0] == expected


class FileDatabase:
    """The ctkDICOMDatabase methods the Lib uses, over the DICOM files imported into it."""

    isOpen = True

    def __init__(self, folders: List[Path]) -> None:
        self.files = sorted(str(p) for folder in folders for p in folder.rglob("*.dcm"))
        self.tags: Dict[tuple, str] = {}  # a database reads each file once

    def value(self, path: str, tag: str) -> str:
        key = (path, tag.replace(",", "|").lower())
        if key not in self.tags:
            self.tags[key] = read_tag(*key)
        return self.tags[key]

    def patients(self):
        return sorted({self.value(f, "0010,0020") for f in self.files})

    def studiesForPatient(self, patient):
        return sorted(
            {self.value(f, "0020,000D") for f in self.files if self.value(f, "0010,0020") == patient}
        )

    def seriesForStudy(self, study):
        return sorted({self.value(f, "0020,000E") for f in self.files if self.value(f, "0020,000D") == study})

    def filesForSeries(self, uid):
        return [f for f in self.files if self.value(f, "0020,000E") == uid]

    def fileValue(self, path, tag):
        return self.value(path, tag)


def test_a_study_loads_into_the_scene_with_the_four_series_assigned_and_the_others_ignored(tmp_path):
    pytest.importorskip("trame_slicer")
    import slicer_helpers  # noqa: F401  (puts the Slicer module on the path)
    from trame_slicer.core import SlicerApp

    from mstkd.dicom_series import SeriesInfo
    from MSTKDSegmentLib import DicomLoader, is_inside
    from MSTKDSegmentLib.volumes import load_volume_file

    write_study(tmp_path, "case1")
    write_study(tmp_path, "case10", numbers=(2, 3))  # beside it, in a folder whose name starts the same
    app = SlicerApp()
    database = FileDatabase([tmp_path])
    loaded: List[str] = []

    def load_series(uids: List[str]):
        """As Slicer's DICOM plugin does: one volume per series, named after its number."""
        ids = []
        for uid in uids:
            files = database.filesForSeries(uid)
            path = tmp_path / f"{uid}.nrrd"
            sitk.WriteImage(read_series_image(SeriesInfo(uid, files=tuple(files))), str(path))
            loaded.append(uid)
            node = load_volume_file(
                app.scene, app.volumes_logic, path, f"Series {database.value(files[0], '0020,0011')}"
            )
            ids.append(node.GetID())
        return ids

    imported: List[str] = []
    loader = DicomLoader(app.scene, database, lambda folder, db: imported.append(folder), load_series)
    nodes, choice = loader.load(str(tmp_path / "case1"))
    assert imported == [str(tmp_path / "case1")]  # the folder goes into the database first
    names = {s: node.GetName().split("_")[0] for s, node in nodes.items()}  # the scene may add '_1'
    assert names == {s: f"Series {n}" for s, n in EXPECTED.items()}
    assert app.scene.GetNodesByClass("vtkMRMLScalarVolumeNode").GetNumberOfItems() == 4  # nothing else loaded
    assert sorted(loaded) == sorted(series_uid("case1", n) for n in EXPECTED.values())
    assert len(choice.skipped) == 6 and not any("case10" in f for s in choice.skipped for f in s.files)
    assert is_inside(str(tmp_path / "case1" / "S02" / "IM0001.dcm"), str(tmp_path / "case1"))
    assert not is_inside(str(tmp_path / "case10" / "S02" / "IM0001.dcm"), str(tmp_path / "case1"))

    nodes, _ = loader.load(str(tmp_path / "case1"), {"t1ce": series_uid("case1", 10), "flair": None})
    assert nodes["t1ce"].GetName().startswith("Series 10") and "flair" not in nodes
    with pytest.raises(MSTKDError, match="No DICOM series of .* is in the DICOM database"):
        loader.load(str(tmp_path / "case2"))
