"""Which series of a DICOM study are the exam's FLAIR, T1, T1Gd and T2: from their tags, not by hand.

Each series is judged from its first file's tags (whoever reads them: SimpleITK here, Slicer's
DICOM database in the Slicer module):
- skipped: not MR; localisers and scouts (image type LOCALIZER, or a scout's name); fewer than
  MIN_SLICES images (no volume); derived series (image type DERIVED or SECONDARY: reformats, maps,
  subtractions); diffusion (DWI, ADC, trace, DTI: by name, image type or a b-value); perfusion
  (DSC, DCE, ASL: by name, image type or more than one temporal position); and sequences that
  are none of the four (SWI, angiography, spectroscopy);
- a sequence: the one the series description names (conventions.guess_sequence), else the one
  the acquisition tags describe: inversion recovery with a long inversion time and a long echo
  is FLAIR; a long repetition and echo without it is T2; a short echo with a short repetition,
  a short inversion (MPRAGE) or a gradient echo is T1. A T1 given a contrast agent
  (ContrastBolusAgent) is T1Gd.
When several series fit one sequence, the thinnest slices win (the best resolution across
slices), then axial ones, then the latest series. The choice is a SeriesChoice a user may change.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from mstkd.conventions import DISPLAY_NAMES, SEQUENCES, SequenceMap, guess_sequence, normalise_name
from mstkd.errors import MSTKDError
from mstkd.imageio import PathLike

# The tags read, as "gggg|eeee" (SimpleITK's spelling; Slicer's database takes "gggg,eeee").
TAGS: Dict[str, str] = {
    "uid": "0020|000e",
    "description": "0008|103e",
    "number": "0020|0011",
    "modality": "0008|0060",
    "image_type": "0008|0008",
    "scanning_sequence": "0018|0020",
    "contrast_agent": "0018|0010",
    "repetition_time": "0018|0080",
    "echo_time": "0018|0081",
    "inversion_time": "0018|0082",
    "b_value": "0018|9087",
    "temporal_positions": "0020|0105",
    "orientation": "0020|0037",
    "slice_thickness": "0018|0050",
    "slice_spacing": "0018|0088",
}
# A series with fewer images is no volume (localisers have one to a few per plane).
MIN_SLICES = 10
# Acquisition tags (ms) that tell the sequences apart at 1.5 and 3 T.
FLAIR_MIN_TI_MS = 1500.0  # FLAIR nulls CSF with TI 1800-2800 ms; MPRAGE uses 800-1200 ms
LONG_TE_MS = 60.0  # T2 and FLAIR echo at 80-140 ms (3D: longer); T1 at 2-20 ms
SHORT_TE_MS = 30.0
LONG_TR_MS = 1500.0
SHORT_TR_MS = 1000.0
# Words of series descriptions, matched as whole words (normalise_name's spelling).
LOCALISER_WORDS = ("localizer", "localiser", "scout", "survey", "3 plane", "3plane", "loc", "aahead scout")
DIFFUSION_WORDS = ("dwi", "diff", "diffusion", "adc", "trace", "tracew", "dti", "tensor", "b1000")
PERFUSION_WORDS = ("perf", "perfusion", "dsc", "dce", "asl", "pwi", "pcasl")
OTHER_WORDS = (
    "swi",
    "susceptibility",
    "t2*",
    "t2 star",
    "t2star",
    "tof",
    "angio",
    "mra",
    "mrv",
    "svs",
    "csi",
)
DIFFUSION_TYPES = ("ADC", "DIFFUSION", "TRACEW", "FA")
PERFUSION_TYPES = ("PERFUSION", "DSC", "ASL")


@dataclass(frozen=True)
class SeriesInfo:
    """What the first file of a series says about it, and its files."""

    uid: str
    description: str = ""
    number: Optional[int] = None
    modality: str = ""
    image_type: Tuple[str, ...] = ()
    scanning_sequence: Tuple[str, ...] = ()
    contrast_agent: str = ""
    repetition_time: Optional[float] = None
    echo_time: Optional[float] = None
    inversion_time: Optional[float] = None
    b_value: Optional[float] = None
    temporal_positions: Optional[int] = None
    orientation: Tuple[float, ...] = ()
    slice_thickness: Optional[float] = None
    files: Tuple[str, ...] = ()

    @property
    def plane(self) -> str:
        """'axial', 'coronal', 'sagittal' (from the slice normal), or '' when the tag is missing."""
        if len(self.orientation) != 6:
            return ""
        normal = np.cross(np.asarray(self.orientation[:3]), np.asarray(self.orientation[3:]))
        return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]

    @property
    def label(self) -> str:
        """How people name the series: 'series 3 "AX FLAIR"'."""
        number = f"series {self.number}" if self.number is not None else f"series {self.uid}"
        return f'{number} "{self.description}"' if self.description else number


def series_info(uid: str, files: Sequence[str], value: Callable[[str, str], str]) -> SeriesInfo:
    """A SeriesInfo from `value(file, tag)` (tag as 'gggg|eeee'; '' when absent) of the series' first file."""
    first = files[0] if files else ""

    def text(name: str) -> str:
        return str(value(first, TAGS[name]) or "").strip()

    thickness = _number(text("slice_spacing")) or _number(text("slice_thickness"))
    return SeriesInfo(
        uid=uid,
        description=text("description"),
        number=_integer(text("number")),
        modality=text("modality").upper(),
        image_type=_values(text("image_type")),
        scanning_sequence=_values(text("scanning_sequence")),
        contrast_agent=text("contrast_agent"),
        repetition_time=_number(text("repetition_time")),
        echo_time=_number(text("echo_time")),
        inversion_time=_number(text("inversion_time")),
        b_value=_number(text("b_value")),
        temporal_positions=_integer(text("temporal_positions")),
        orientation=tuple(v for v in (_number(p) for p in _values(text("orientation"))) if v is not None),
        slice_thickness=thickness,
        files=tuple(files),
    )


def read_study(folder: PathLike) -> List[SeriesInfo]:
    """Every DICOM series in a folder and its subfolders, read with SimpleITK (GDCM), in series order."""
    files: Dict[str, List[str]] = {}
    for directory, _, _ in sorted(os.walk(folder)):
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(directory):
            files.setdefault(uid, []).extend(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(directory, uid))
    if not files:
        raise MSTKDError(f"No DICOM series in {folder}; point to the folder of one study.")
    study = [series_info(uid, paths, read_tag) for uid, paths in files.items()]
    return sorted(study, key=lambda s: (s.number is None, s.number or 0, s.uid))


def read_tag(path: str, tag: str) -> str:
    """One tag of a DICOM file ('gggg|eeee'), '' when absent; only the header is read."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.ReadImageInformation()
    return reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else ""


def read_series_image(series: SeriesInfo) -> sitk.Image:
    """The volume of a series (its files sorted by position along the slice normal)."""
    reader = sitk.ImageSeriesReader()
    directory = os.path.dirname(series.files[0])
    ordered = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(directory, series.uid)
    reader.SetFileNames([f for f in ordered if f in set(series.files)] or list(series.files))
    return reader.Execute()


def classify(series: SeriesInfo) -> Tuple[Optional[str], str]:
    """(canonical sequence, or None when skipped; the reason, for people)."""
    skip = _skip_reason(series)
    if skip:
        return None, skip
    named = guess_sequence(series.description)
    measured, evidence = _from_tags(series)
    family = named or measured
    if family is None:
        return None, "neither its description nor its tags name FLAIR, T1, T1Gd or T2"
    if family in ("t1", "t1ce"):
        family = "t1ce" if series.contrast_agent or named == "t1ce" else "t1"
    how = [f"description '{series.description}'"] if named else []
    how += [evidence] if evidence else []
    if series.contrast_agent:
        how.append(f"contrast agent {series.contrast_agent}")
    if named and measured and {named, measured} != {"t1", "t1ce"} and named != measured:
        how.append(f"although its tags suggest {DISPLAY_NAMES[measured]}")
    return family, "; ".join(how)


@dataclass(frozen=True)
class SeriesChoice:
    """The series chosen for each sequence, the other series that fit, and those skipped (with why)."""

    chosen: Dict[str, SeriesInfo]
    candidates: Dict[str, Tuple[SeriesInfo, ...]] = field(default_factory=dict)
    reasons: Dict[str, str] = field(default_factory=dict)  # by series uid
    skipped: Tuple[SeriesInfo, ...] = ()

    @property
    def sequences(self) -> SequenceMap[SeriesInfo]:
        """The chosen series by sequence, in canonical order."""
        return SequenceMap(self.chosen)

    def assign(
        self, sequence: str, uid: Optional[str], everything: Sequence[SeriesInfo] = ()
    ) -> SeriesChoice:
        """The choice with `sequence` given to series `uid` (any series of the study), or dropped for None."""
        chosen = dict(self.chosen)
        if uid is None:
            chosen.pop(sequence, None)
            return replace(self, chosen=chosen)
        known = {s.uid: s for group in self.candidates.values() for s in group}
        known.update({s.uid: s for s in (*self.skipped, *everything)})
        if uid not in known:
            raise MSTKDError(f"No series {uid} in this study; choose one of {', '.join(sorted(known))}.")
        chosen[sequence] = known[uid]
        return replace(self, chosen=chosen)

    def describe(self) -> List[str]:
        """One line per chosen sequence and per series left out, for the log."""
        lines = [
            f"{DISPLAY_NAMES[s]}: {series.label} ({self.reasons.get(series.uid, 'chosen by hand')})"
            for s, series in SequenceMap(self.chosen).items()
        ]
        for sequence, group in SequenceMap(self.candidates).items():
            lines += [
                f"not used for {DISPLAY_NAMES[sequence]}: {s.label} (another series fits better)"
                for s in group
                if self.chosen.get(sequence) is not s
            ]
        lines += [f"skipped: {s.label} ({self.reasons[s.uid]})" for s in self.skipped]
        return lines


def choose_series(
    series: Sequence[SeriesInfo], overrides: Optional[Mapping[str, Optional[str]]] = None
) -> SeriesChoice:
    """Assign the study's series to sequences (see the module); `overrides` maps sequences to series uids."""
    candidates: Dict[str, List[SeriesInfo]] = {s: [] for s in SEQUENCES}
    reasons: Dict[str, str] = {}
    skipped = []
    for item in series:
        sequence, reasons[item.uid] = classify(item)
        if sequence is None:
            skipped.append(item)
        else:
            candidates[sequence].append(item)
    ranked = {s: tuple(sorted(group, key=_preference)) for s, group in candidates.items() if group}
    choice = SeriesChoice({s: group[0] for s, group in ranked.items()}, ranked, reasons, tuple(skipped))
    for sequence, uid in (overrides or {}).items():
        choice = choice.assign(sequence, uid, series)
    return choice


def _skip_reason(series: SeriesInfo) -> str:
    words = normalise_name(series.description)
    types = {t.upper() for t in series.image_type}
    if series.modality and series.modality != "MR":
        return f"modality {series.modality}, not MR"
    if "LOCALIZER" in types or _has_word(words, LOCALISER_WORDS):
        return "localiser"
    if len(series.files) < MIN_SLICES:
        return f"{len(series.files)} image(s): not a volume"
    if types & set(DIFFUSION_TYPES) or (series.b_value or 0) > 0 or _has_word(words, DIFFUSION_WORDS):
        return "diffusion (DWI, ADC or DTI)"
    if (
        types & set(PERFUSION_TYPES)
        or (series.temporal_positions or 1) > 1
        or _has_word(words, PERFUSION_WORDS)
    ):
        return "perfusion (several time points)"
    if series.image_type and series.image_type[0].upper() == "DERIVED" or "SECONDARY" in types:
        return f"derived ({'/'.join(series.image_type)}): a reformat, map or subtraction"
    if _has_word(words, OTHER_WORDS):
        return "not FLAIR, T1, T1Gd or T2 (susceptibility, angiography or spectroscopy)"
    return ""


def _from_tags(series: SeriesInfo) -> Tuple[Optional[str], str]:
    """The sequence the acquisition tags describe, and those tags in words."""
    tr, te, ti = series.repetition_time, series.echo_time, series.inversion_time
    inversion = "IR" in series.scanning_sequence
    parts = [
        f"{name} {value:g} ms" for name, value in (("TR", tr), ("TE", te), ("TI", ti)) if value is not None
    ]
    if series.scanning_sequence:
        parts.insert(0, "/".join(series.scanning_sequence))
    evidence = ", ".join(parts)
    if te is None:
        return None, evidence
    if inversion and ti is not None and ti >= FLAIR_MIN_TI_MS and te >= LONG_TE_MS:
        return "flair", evidence
    if te >= LONG_TE_MS and (tr or 0.0) >= LONG_TR_MS and not inversion:
        return "t2", evidence
    short_inversion = inversion and ti is not None and ti < FLAIR_MIN_TI_MS
    if te <= SHORT_TE_MS and (
        (tr or 0.0) <= SHORT_TR_MS or short_inversion or "GR" in series.scanning_sequence
    ):
        return "t1", evidence
    return None, evidence


def _preference(series: SeriesInfo) -> tuple:
    """Sort key: thinnest slices first, then axial, then the latest series."""
    thickness = series.slice_thickness if series.slice_thickness is not None else float("inf")
    return (round(thickness, 1), series.plane != "axial", -(series.number or 0))


def _has_word(text: str, words: Sequence[str]) -> bool:
    return any(re.search(r"(?<![a-z0-9])" + re.escape(w) + r"(?![a-z0-9])", text) for w in words)


def _values(text: str) -> Tuple[str, ...]:
    return tuple(part.strip() for part in text.split("\\") if part.strip())


def _number(text: str) -> Optional[float]:
    try:
        return float(text)
    except ValueError:
        return None


def _integer(text: str) -> Optional[int]:
    number = _number(text)
    return int(number) if number is not None else None
