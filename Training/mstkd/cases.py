"""Discovery of cases in any BraTS/FeTS layout, or in a folder of loose files.

One rule covers every release: an image file's name ends with a token naming a sequence (any
alias in `conventions`) or the segmentation (`seg`), optionally preceded by qualifiers such as
`brain` or `final`; what comes before is the case id (the folder's name when nothing does).
Files are grouped by (folder, case id).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from mstkd.conventions import (
    NAME_SEPARATOR,
    NAME_WORD,
    SEGMENTATION,
    SEQUENCE_ALIASES,
    SEQUENCES,
    SequenceMap,
    canonical_order,
)
from mstkd.errors import MSTKDError
from mstkd.imageio import IMAGE_EXTENSIONS, PathLike, image_extension, strip_image_extension

# A case's subfolder holding the same exam as acquired on a scanner (`mstkd phantom --native`):
# a different exam of the same case, so discovery does not mix it in.
NATIVE_FOLDER = "native"
# A case's subfolder holding masks that are not segmentations (a phantom's true brain mask).
BRAIN_MASK_FOLDER = "brainmask"
# A phantom's subfolder holding its class map (`mstkd phantom --class-maps`): not an image of the exam.
CLASS_MAP_FOLDER = "classes"
_SIDE_FOLDERS = frozenset({NATIVE_FOLDER, CLASS_MAP_FOLDER, BRAIN_MASK_FOLDER})
# A case folder holding this file is a held-out test case (`mstkd phantom --generator ood`):
# training and validation refuse it.
HELD_OUT_MARKER = "held_out.json"

# Words that may sit between the case id and the sequence token (FeTS: `_brain_t1`, `_final_seg`).
QUALIFIERS = frozenset({"brain", "final"})

MISSING_SEQUENCES = "missing-sequences"
MISSING_SEGMENTATION = "missing-segmentation"
DUPLICATE_FILE = "duplicate-file"
DUPLICATE_CASE = "duplicate-case"
UNRECOGNISED_FILE = "unrecognised-file"
UNREADABLE_FOLDER = "unreadable-folder"


@dataclass(frozen=True)
class Case:
    """One case: the file of each sequence present and of the segmentation, if any."""

    case_id: str
    sequences: SequenceMap[Path]
    segmentation: Optional[Path] = None
    folder: Optional[Path] = None

    @property
    def missing(self) -> Tuple[str, ...]:
        """The canonical sequences this case lacks."""
        return canonical_order(set(SEQUENCES) - set(self.sequences))


@dataclass(frozen=True)
class Problem:
    """Something odd found while discovering cases; `kind` is one of this module's constants."""

    kind: str
    message: str
    case_id: Optional[str] = None
    paths: Tuple[Path, ...] = ()


@dataclass(frozen=True)
class Discovery:
    """The cases found under a folder, sorted by case id, and the problems met on the way."""

    root: Path
    cases: Tuple[Case, ...]
    problems: Tuple[Problem, ...] = field(default=())

    def case(self, case_id: str) -> Case:
        """The case with this id, or raise naming a few that exist."""
        for case in self.cases:
            if case.case_id == case_id:
                return case
        raise MSTKDError(
            f"No case '{case_id}' under {self.root}; it holds {name_a_few(c.case_id for c in self.cases)}."
        )

    def problems_of(self, kind: str) -> Tuple[Problem, ...]:
        """The problems of one kind."""
        return tuple(p for p in self.problems if p.kind == kind)

    def summary(self) -> str:
        """A short human-readable account: number of cases and one line per problem."""
        lines = [f"{len(self.cases)} case(s) under {self.root}"]
        lines += [f"  {p.kind}: {p.message}" for p in self.problems]
        return "\n".join(lines)


def class_map_path(case: Case) -> Path:
    """Where a phantom case keeps its class map (it may not exist)."""
    folder = case.folder if case.folder is not None else Path(".")
    return folder / CLASS_MAP_FOLDER / f"{case.case_id}_classes.nii.gz"


def parse_file_name(path: PathLike) -> Optional[Tuple[str, str]]:
    """Split an image file name into (case id prefix, sequence or 'seg'), or None if it names neither.

    The prefix is '' when the name is only a sequence ('flair.nii.gz').
    """
    if image_extension(path) is None:
        return None
    stem = strip_image_extension(path)
    tokens = [t for t in NAME_SEPARATOR.split(stem) if t]
    # Two-token aliases first, so that 'caseA_t2_flair' is FLAIR and 't1_native' is T1.
    for width in (2, 1):
        if len(tokens) < width:
            continue
        name = _sequence_or_segmentation(" ".join(tokens[-width:]))
        if name is not None:
            prefix = tokens[:-width]
            while prefix and prefix[-1].lower() in QUALIFIERS:
                prefix.pop()
            return _original_prefix(stem, len(prefix)), name
    return None


def discover_cases(root: PathLike) -> Discovery:
    """Find every case under `root` (searched recursively) and report what looks wrong."""
    root = _existing_folder(root)
    problems: List[Problem] = []
    groups: Dict[Tuple[Path, str], Dict[str, List[Path]]] = defaultdict(lambda: defaultdict(list))
    found_images = False

    def unreadable(error: OSError) -> None:
        problems.append(Problem(UNREADABLE_FOLDER, f"cannot read {error.filename}: {error.strerror}"))

    for folder, subfolders, files in os.walk(root, onerror=unreadable):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and d not in _SIDE_FOLDERS)
        for name in sorted(files):
            path = Path(folder) / name
            if name.startswith(".") or image_extension(name) is None or not path.is_file():
                continue
            found_images = True
            parsed = parse_file_name(name)
            if parsed is None:
                problems.append(
                    Problem(UNRECOGNISED_FILE, f"{path} names no sequence or segmentation", paths=(path,))
                )
                continue
            prefix, sequence = parsed
            groups[(Path(folder), prefix or Path(folder).name)][sequence].append(path)

    if not found_images:
        raise MSTKDError(
            f"{root} holds no image files ({', '.join(IMAGE_EXTENSIONS)}); point to the folder of a "
            f"BraTS/FeTS release or to a folder of files named like caseA_flair.nii.gz."
        )
    cases = _build_cases(groups, problems)
    if not cases:
        examples = name_a_few(p.paths[0].name for p in problems if p.kind == UNRECOGNISED_FILE)
        raise MSTKDError(
            f"No file under {root} names a sequence ({examples}); name files like "
            f"<case>_flair.nii.gz, <case>_t1.nii.gz, <case>_t1ce.nii.gz, <case>_t2.nii.gz, <case>_seg.nii.gz."
        )
    return Discovery(root, cases, tuple(problems))


def find_case_files(folder: PathLike, case_id: Optional[str] = None) -> Case:
    """The files of one case directly inside `folder` (not its subfolders); ambiguity raises."""
    folder = _existing_folder(folder)
    groups: Dict[Tuple[Path, str], Dict[str, List[Path]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        parsed = parse_file_name(path)
        if parsed is not None:
            groups[(folder, parsed[0] or folder.name)][parsed[1]].append(path)
    ids = sorted(key[1] for key in groups)
    if not ids:
        raise MSTKDError(
            f"No image file in {folder} names a sequence; name files like caseA_flair.nii.gz or t1.nrrd."
        )
    if case_id is None:
        if len(ids) > 1:
            raise MSTKDError(f"{folder} holds several cases ({name_a_few(ids)}); choose one of them.")
        case_id = ids[0]
    files = groups.get((folder, case_id))
    if files is None:
        raise MSTKDError(f"No case '{case_id}' in {folder}; it holds {name_a_few(ids)}.")
    for name, paths in files.items():
        if len(paths) > 1:
            raise MSTKDError(
                f"Case '{case_id}' has {len(paths)} files for {name}: {name_a_few(p.name for p in paths)}; "
                f"keep one of them."
            )
    return _make_case(case_id, folder, files)


def _build_cases(
    groups: Mapping[Tuple[Path, str], Mapping[str, List[Path]]], problems: List[Problem]
) -> Tuple[Case, ...]:
    by_id: Dict[str, Case] = {}
    for (folder, case_id), files in sorted(groups.items()):
        if case_id in by_id:
            kept = by_id[case_id].folder
            problems.append(
                Problem(
                    DUPLICATE_CASE,
                    f"case '{case_id}' is in {kept} and in {folder}; using {kept}",
                    case_id,
                    (folder,),
                )
            )
            continue
        for name, paths in sorted(files.items()):
            if len(paths) > 1:
                problems.append(
                    Problem(
                        DUPLICATE_FILE,
                        f"case '{case_id}' has {len(paths)} files for {name}; using {paths[0].name}, "
                        f"ignoring {', '.join(p.name for p in paths[1:])}",
                        case_id,
                        tuple(paths),
                    )
                )
        case = _make_case(case_id, folder, files)
        if case.missing:
            problems.append(
                Problem(MISSING_SEQUENCES, f"case '{case_id}' lacks {', '.join(case.missing)}", case_id)
            )
        if case.segmentation is None:
            problems.append(Problem(MISSING_SEGMENTATION, f"case '{case_id}' has no segmentation", case_id))
        by_id[case_id] = case
    return tuple(by_id[i] for i in sorted(by_id))


def _make_case(case_id: str, folder: Path, files: Mapping[str, List[Path]]) -> Case:
    sequences = SequenceMap({s: paths[0] for s, paths in files.items() if s != SEGMENTATION})
    segmentation = files[SEGMENTATION][0] if SEGMENTATION in files else None
    return Case(case_id, sequences, segmentation, folder)


def _sequence_or_segmentation(text: str) -> Optional[str]:
    text = text.lower()
    return SEGMENTATION if text == SEGMENTATION else SEQUENCE_ALIASES.get(text)


def _original_prefix(stem: str, n_tokens: int) -> str:
    """The stem up to the end of its first `n_tokens` tokens, separators inside kept as written."""
    if n_tokens == 0:
        return ""
    ends = [m.end() for m in NAME_WORD.finditer(stem)]
    return stem[: ends[n_tokens - 1]]


def _existing_folder(folder: PathLike) -> Path:
    folder = Path(folder)
    if not folder.exists():
        raise MSTKDError(f"Folder not found: {folder}. Check the path.")
    if not folder.is_dir():
        raise MSTKDError(f"{folder} is a file; give the folder that holds the case files.")
    return folder


def name_a_few(items: Iterable[object], limit: int = 5) -> str:
    """A few items for a message: 'a, b, c and 7 more'."""
    items = list(items)
    if not items:
        return "nothing"
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
