"""The one place for names: sequences, their aliases, the 15 subsets, label conventions, regions.

Every other module imports these names instead of spelling them again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterable, Iterator, Mapping, Optional, Sequence, Tuple, TypeVar

import numpy as np

from mstkd.errors import MSTKDError

# Canonical sequence order: the channel order of every tensor this project builds.
SEQUENCES: Tuple[str, ...] = ("flair", "t1", "t1ce", "t2")

# How the papers' tables name each sequence.
DISPLAY_NAMES: Dict[str, str] = {"flair": "FLAIR", "t1": "T1", "t1ce": "T1Gd", "t2": "T2"}

# Name of the ground-truth file in every BraTS/FeTS release.
SEGMENTATION = "seg"

# The short names of each sequence, the canonical one first: the file-name suffixes of the BraTS
# and FeTS releases, and T1Gd. `mstkd segment` takes each as an option (--flair, --t2f, ...).
SHORT_NAMES: Dict[str, Tuple[str, ...]] = {
    "flair": ("flair", "t2f"),
    "t1": ("t1", "t1n"),
    "t1ce": ("t1ce", "t1c", "t1gd"),
    "t2": ("t2", "t2w"),
}

# Every other name a sequence goes by: spellings in file names and words used in DICOM series
# descriptions. Keys are normalised with `normalise_name`.
_LONG_NAMES: Dict[str, Tuple[str, ...]] = {
    "flair": ("t2flair", "t2-flair", "t2_flair", "dark fluid", "darkfluid"),
    "t1": ("t1w", "t1native", "t1_native", "t1 pre", "t1pre", "t1 precontrast", "native t1"),
    "t1ce": (
        "t1-gd",
        "t1_gd",
        "t1post",
        "t1-post",
        "t1 post",
        "t1+c",
        "t1 +c",
        "t1c+",
        "t1 gad",
        "t1gad",
        "t1 contrast",
        "t1 ce",
        "t1-ce",
        "post contrast",
        "postcontrast",
        "mprage post",
        "+c",
        "c+",
    ),
    "t2": ("t2 weighted", "t2-weighted"),
}
_ALIASES: Dict[str, Tuple[str, ...]] = {s: SHORT_NAMES[s] + _LONG_NAMES[s] for s in SEQUENCES}

# What separates the words of a name (file names, node names, series descriptions).
_SEPARATOR_CHARACTERS = r"\s_\-."
NAME_SEPARATOR = re.compile(f"[{_SEPARATOR_CHARACTERS}]+")
NAME_WORD = re.compile(f"[^{_SEPARATOR_CHARACTERS}]+")


def normalise_name(text: str) -> str:
    """Lower-case a name and turn runs of separators into one space."""
    return NAME_SEPARATOR.sub(" ", text.strip().lower()).strip()


SEQUENCE_ALIASES: Dict[str, str] = {
    normalise_name(alias): sequence for sequence, aliases in _ALIASES.items() for alias in aliases
}


def sequence_from_name(name: str) -> str:
    """Return the canonical sequence an exact alias names (case-insensitive), or raise."""
    sequence = SEQUENCE_ALIASES.get(normalise_name(name))
    if sequence is None:
        raise MSTKDError(
            f"'{name}' is not a sequence name this tool knows; use one of {', '.join(SEQUENCES)} "
            f"(aliases such as T1Gd, t2f, t1n, t2w are accepted too)."
        )
    return sequence


def guess_sequence(description: str) -> Optional[str]:
    """Guess the sequence from free text (a DICOM series description, a node or file name).

    Returns None when the text names no sequence or names more than one.
    """
    text = normalise_name(description)
    if text in SEQUENCE_ALIASES:
        return SEQUENCE_ALIASES[text]
    found = set()
    # Longest aliases first so that "t1 post" wins over "t1" and "t2 flair" over "t2".
    for alias in sorted(SEQUENCE_ALIASES, key=len, reverse=True):
        pattern = r"(?<![a-z0-9])" + re.escape(alias) + r"(?![a-z0-9])"
        if re.search(pattern, text):
            found.add(SEQUENCE_ALIASES[alias])
            text = re.sub(pattern, " ", text)
    if found == {"t1", "t1ce"}:
        return "t1ce"
    return found.pop() if len(found) == 1 else None


def canonical_order(sequences: Iterable[str]) -> Tuple[str, ...]:
    """The canonical sequences among `sequences`, in canonical order (the one place that orders them)."""
    chosen = set(sequences)
    return tuple(s for s in SEQUENCES if s in chosen)


@dataclass(frozen=True)
class Subset:
    """A non-empty set of available sequences, kept in canonical order."""

    sequences: Tuple[str, ...]

    @property
    def name(self) -> str:
        """The paper's display name, e.g. 'FLAIR+T1Gd+T2' or 'all'."""
        if len(self.sequences) == len(SEQUENCES):
            return "all"
        return "+".join(DISPLAY_NAMES[s] for s in self.sequences)

    @property
    def key(self) -> str:
        """A machine-friendly name, e.g. 'flair,t1ce,t2'."""
        return ",".join(self.sequences)

    @property
    def mask(self) -> Tuple[bool, ...]:
        """One flag per canonical sequence: True where the sequence is present."""
        return tuple(s in self.sequences for s in SEQUENCES)

    @property
    def absent(self) -> Tuple[str, ...]:
        """The canonical sequences not in the subset, in canonical order."""
        return canonical_order(set(SEQUENCES) - set(self.sequences))

    def __contains__(self, sequence: object) -> bool:
        return sequence in self.sequences

    def __len__(self) -> int:
        return len(self.sequences)


def make_subset(sequences: Iterable[str]) -> Subset:
    """Build a Subset from canonical names or aliases, in any order."""
    chosen = canonical_order(sequence_from_name(s) for s in sequences)
    if not chosen:
        raise MSTKDError(f"No sequence was given; give at least one of {', '.join(SEQUENCES)}.")
    return Subset(chosen)


Value = TypeVar("Value")


class SequenceMap(Mapping[str, Value]):
    """Something per sequence (a file, an image, a volume node), keyed by canonical name in canonical order.

    A user's choice of sequences takes this form where it enters a process (`sequence_map` checks
    it) and keeps it from there on: code that receives a SequenceMap trusts its keys and order.
    """

    def __init__(self, items: Mapping[str, Value]) -> None:
        unknown = sorted(set(items) - set(SEQUENCES))
        if unknown:
            raise ValueError(f"SequenceMap keys must be canonical sequence names, not {unknown}")
        self._items = {s: items[s] for s in canonical_order(items)}

    def __getitem__(self, sequence: str) -> Value:
        return self._items[sequence]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"SequenceMap({self._items!r})"

    @property
    def subset(self) -> Subset:
        """The sequences present, as a Subset; an empty map is a user's mistake."""
        return make_subset(self._items)


def sequence_map(given: Mapping[str, Optional[Value]]) -> SequenceMap[Value]:
    """A user's sequences keyed by canonical name (aliases accepted, None meaning absent), checked once.

    A SequenceMap passes through unchanged: it was checked where it was built.
    """
    if isinstance(given, SequenceMap):
        return given
    canonical: Dict[str, Value] = {}
    names: Dict[str, str] = {}
    for name, item in given.items():
        if item is None:
            continue
        sequence = sequence_from_name(name)
        if sequence in canonical:
            raise MSTKDError(
                f"'{names[sequence]}' and '{name}' both name the {sequence} sequence; give each "
                "sequence once."
            )
        canonical[sequence] = item
        names[sequence] = name
    return SequenceMap(canonical)


# The paper's column order (MST-KDNet, METHOD.md section 1.5).
_PAPER_ORDER = (
    ("t2",),
    ("t1ce",),
    ("t1",),
    ("flair",),
    ("t1ce", "t2"),
    ("t1", "t1ce"),
    ("flair", "t1"),
    ("t1", "t2"),
    ("flair", "t2"),
    ("flair", "t1ce"),
    ("flair", "t1", "t1ce"),
    ("flair", "t1", "t2"),
    ("flair", "t1ce", "t2"),
    ("t1", "t1ce", "t2"),
    SEQUENCES,
)
SUBSETS: Tuple[Subset, ...] = tuple(make_subset(s) for s in _PAPER_ORDER)


def parse_subset(text: str) -> Subset:
    """Parse a user's subset string: 'flair,t2', 'FLAIR+T2', 'T1Gd', or 'all'."""
    if normalise_name(text) == "all":
        return SUBSETS[-1]
    parts = [p for p in re.split(r"[,+\s]+", text.strip()) if p]
    return make_subset(parts)


def parse_subsets(text: str) -> Tuple[Subset, ...]:
    """Parse a list of subsets separated by ';' (e.g. 'flair;flair,t2'), or 'all15' for the protocol."""
    if normalise_name(text) in ("all15", "protocol", "every"):
        return SUBSETS
    return tuple(parse_subset(part) for part in text.split(";") if part.strip())


# The oldest PyTorch this code runs on; pyproject.toml requires the same (a test checks), and the
# Slicer module asks the PyTorch extension for it.
TORCH_VERSION_FLOOR = "2.4"

# Where a user may ask computations to run ("cuda:N" picks one GPU); see devices.resolve_device.
DEVICE_CHOICES: Tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
DEFAULT_DEVICE = DEVICE_CHOICES[0]
_ONE_GPU = re.compile(r"cuda:(\d+)")


def parse_device(name: str) -> str:
    """A device name as the engine spells it ('auto', 'cpu', 'cuda', 'cuda:N', 'mps'), or raise.

    Checks the spelling only (no PyTorch needed); whether the device exists is resolve_device's job.
    """
    text = str(name).strip().lower()
    if text in DEVICE_CHOICES:
        return text
    one_gpu = _ONE_GPU.fullmatch(text)
    if one_gpu:
        return f"cuda:{int(one_gpu.group(1))}"
    raise MSTKDError(
        f"Unknown device '{name}'; use one of {', '.join(DEVICE_CHOICES)} (or cuda:N for one GPU of several)."
    )


# How per-channel probabilities become labels (mstkd.prediction.labelrule explains each rule).
EXCLUSIVE_RULE, INDEPENDENT_RULE, ARGMAX_RULE = "exclusive", "independent", "argmax"
LABEL_RULES: Tuple[str, ...] = (EXCLUSIVE_RULE, INDEPENDENT_RULE, ARGMAX_RULE)

# Evaluation protocols of a model (mstkd.protocol explains each).
WHOLE_VOLUME_PROTOCOL, REFERENCE_PROTOCOL = "whole-volume", "reference"
PROTOCOLS: Tuple[str, ...] = (WHOLE_VOLUME_PROTOCOL, REFERENCE_PROTOCOL)

# How an exam's skull and scalp are dealt with before segmenting (mstkd.preprocess.brain_extraction):
# `auto` extracts the brain unless every sequence is already skull-stripped.
BRAIN_EXTRACTION_CHOICES: Tuple[str, ...] = ("auto", "deepbet", "hd-bet", "none")
DEFAULT_BRAIN_EXTRACTION = BRAIN_EXTRACTION_CHOICES[0]

# Tumour sub-regions (disjoint labels) and the evaluated regions built from them.
SUBREGIONS: Tuple[str, ...] = ("ncr", "ed", "et")
SUBREGION_NAMES: Dict[str, str] = {
    "ncr": "Necrotic / non-enhancing tumour core",
    "ed": "Peritumoral oedema",
    "et": "Enhancing tumour",
    "rc": "Resection cavity",
}
REGIONS: Dict[str, FrozenSet[str]] = {
    "WT": frozenset({"ncr", "ed", "et"}),
    "TC": frozenset({"ncr", "et"}),
    "ET": frozenset({"et"}),
}
# The post-treatment resection cavity is in no tumour region; BraTS 2024 scores it as a region of its own.
CAVITY_REGION: Dict[str, FrozenSet[str]] = {"RC": frozenset({"rc"})}
REGION_NAMES: Dict[str, str] = {"WT": "Whole tumour", "TC": "Tumour core", "ET": "Enhancing tumour"}
# Display colours (RGB, 0-1): the BraTS figures' necrosis red, oedema green, enhancing tumour yellow;
# the nested regions, drawn as outlines around them, in colours of their own.
SUBREGION_COLOURS: Dict[str, Tuple[float, float, float]] = {
    "ncr": (0.9, 0.1, 0.1),
    "ed": (0.1, 0.8, 0.2),
    "et": (1.0, 0.9, 0.1),
}
REGION_COLOURS: Dict[str, Tuple[float, float, float]] = {"WT": (0.2, 0.6, 1.0), "TC": (1.0, 0.5, 0.0)}
# The brain mask's outline: pale, so that it stays behind the tumour's colours.
BRAIN_MASK_COLOUR: Tuple[float, float, float] = (0.98, 0.98, 0.88)
# The networks' output channels, in order (METHOD.md 1.2).
MODEL_CHANNELS: Tuple[str, ...] = ("ncr", "ed", "et", "background")

# A phantom's class map (`mstkd phantom --class-maps`): normal tissue and tumour compartments,
# 0 outside the brain. Domain-randomised training draws its images from it. 'ncr' is the necrosis
# of an enhancing tumour, 'net' the solid core of a non-enhancing one: both are the NCR sub-region.
PHANTOM_CLASSES: Dict[str, int] = {"csf": 1, "gm": 2, "wm": 3, "ncr": 4, "net": 5, "et": 6, "ed": 7}
CLASS_SUBREGIONS: Dict[str, str] = {"ncr": "ncr", "net": "ncr", "et": "et", "ed": "ed"}


@dataclass(frozen=True)
class LabelConvention:
    """The integer value of each sub-region in a release's label maps."""

    name: str
    values: Mapping[str, int]

    def value_set(self) -> FrozenSet[int]:
        """All values a label map of this convention may hold, background included."""
        return frozenset({0, *self.values.values()})


LABEL_CONVENTIONS: Dict[str, LabelConvention] = {
    c.name: c
    for c in (
        LabelConvention("brats2021", {"ncr": 1, "ed": 2, "et": 4}),
        LabelConvention("brats2023", {"ncr": 1, "ed": 2, "et": 3}),
        LabelConvention("brats2024", {"ncr": 1, "ed": 2, "et": 3, "rc": 4}),
    )
}
DEFAULT_LABELS = "brats2021"


def label_convention(name: str) -> LabelConvention:
    """Look up a label convention by name, or raise with the valid names."""
    try:
        return LABEL_CONVENTIONS[name.lower()]
    except KeyError:
        raise MSTKDError(
            f"Unknown label convention '{name}'; choose one of {', '.join(LABEL_CONVENTIONS)}."
        ) from None


def check_labels(labels: np.ndarray, convention: LabelConvention, what: str = "label map") -> None:
    """Raise when a label map holds a value outside the convention (or a value that is not a whole number)."""
    values = np.unique(labels)
    fractional = [float(v) for v in values if not float(v).is_integer()]
    if fractional:
        raise MSTKDError(
            f"The {what} holds values that are not whole numbers (e.g. {fractional[0]:g}); a label map holds "
            "labels, not probabilities."
        )
    present = {int(v) for v in values}
    unexpected = sorted(present - convention.value_set())
    if unexpected:
        raise MSTKDError(
            f"The {what} holds label value(s) {unexpected}, which are not part of the "
            f"'{convention.name}' convention {sorted(convention.value_set())}; pass the right "
            f"--labels option (brats2021 uses 4 for ET, brats2023 uses 3)."
        )


def convert_labels(labels: np.ndarray, source: str, target: str) -> np.ndarray:
    """Re-code a label map from one convention to another.

    A sub-region the target lacks (the 2024 resection cavity) becomes background.
    """
    src, dst = label_convention(source), label_convention(target)
    check_labels(labels, src)
    out = np.zeros_like(labels)
    for subregion, value in src.values.items():
        if subregion in dst.values:
            out[labels == value] = dst.values[subregion]
    return out


def regions_with_cavity(convention: LabelConvention) -> Dict[str, FrozenSet[str]]:
    """WT, TC, ET and, where the labels have a resection cavity, RC: the regions BraTS 2024 ranks."""
    return {**REGIONS, **(CAVITY_REGION if "rc" in convention.values else {})}


def region_masks(
    labels: np.ndarray, convention: LabelConvention, regions: Mapping[str, FrozenSet[str]] = REGIONS
) -> Dict[str, np.ndarray]:
    """Boolean masks of `regions` (WT, TC and ET, none holding the resection cavity) from a label map."""
    return {
        region: np.isin(labels, [convention.values[s] for s in subregions])
        for region, subregions in regions.items()
    }


@dataclass(frozen=True)
class Requirement:
    """A package the engine needs at run time: its distribution (pip) name, import name and floor."""

    distribution: str
    module: str
    minimum: str

    @property
    def specifier(self) -> str:
        """The pip requirement, e.g. 'monai>=1.4'."""
        return f"{self.distribution}>={self.minimum}"


# What segmenting imports, at the floors pyproject.toml states (a test keeps the two equal).
SEGMENT_REQUIREMENTS: Tuple[Requirement, ...] = (
    Requirement("torch", "torch", TORCH_VERSION_FLOOR),
    Requirement("monai", "monai", "1.4"),
    Requirement("SimpleITK", "SimpleITK", "2.3"),
    Requirement("numpy", "numpy", "1.24"),
    Requirement("scipy", "scipy", "1.10"),
    Requirement("safetensors", "safetensors", "0.4"),
    Requirement("PyYAML", "yaml", "6"),
    Requirement("tqdm", "tqdm", "4.66"),
    Requirement("psutil", "psutil", "5.9"),
)
# What generating a synthetic exam imports besides numpy and SimpleITK.
PHANTOM_REQUIREMENTS: Tuple[Requirement, ...] = (
    Requirement("nilearn", "nilearn", "0.10"),
    Requirement("scipy", "scipy", "1.10"),
    Requirement("tqdm", "tqdm", "4.66"),
)


# The spatial axes 0, 1, 2 by name, as `output.mirror_axes` is written on the command line and in reports.
AXIS_LETTERS = "xyz"
NO_MIRRORING = "none"


def parse_mirror_axes(text: str) -> Tuple[int, ...]:
    """'x', 'xz', 'xyz' ... -> spatial axes (0, 1, 2); 'none' -> () (one pass)."""
    letters = text.strip().lower()
    if letters == NO_MIRRORING:
        return ()
    if not letters or set(letters) - set(AXIS_LETTERS) or len(set(letters)) != len(letters):
        raise MSTKDError(
            f"Mirroring axes: give distinct axes among x, y and z (e.g. x or xyz), or 'none'; not {text!r}."
        )
    return tuple(AXIS_LETTERS.index(letter) for letter in letters)


def mirror_passes(axes: Sequence[int]) -> int:
    """Passes a window takes with test-time mirroring along `axes`: every combination of them, and none."""
    return 2 ** len(axes)
