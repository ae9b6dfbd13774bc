"""Which MRI sequence a volume node holds, guessed from its name and DICOM series description."""

from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Mapping, Optional

from mstkd.conventions import DISPLAY_NAMES, SequenceMap, guess_sequence, sequence_map

# Node (or subject-hierarchy item) attributes that may hold a DICOM series description.
SERIES_DESCRIPTION_ATTRIBUTES = ("DICOM.SeriesDescription", "DICOM.0008,103E", "DICOM.0008|103e")

Describe = Callable[[object], Iterable[str]]


def node_descriptions(node, extra: Iterable[str] = ()) -> List[str]:
    """The texts that may name a node's sequence, most telling first: series descriptions, then its name."""
    texts = [t for t in extra if t]
    texts += [node.GetAttribute(a) for a in SERIES_DESCRIPTION_ATTRIBUTES if node.GetAttribute(a)]
    scene = node.GetScene()
    hierarchy = scene.GetSubjectHierarchyNode() if scene is not None else None
    if hierarchy is not None:
        item = hierarchy.GetItemByDataNode(node)
        texts += [
            hierarchy.GetItemAttribute(item, a)
            for a in SERIES_DESCRIPTION_ATTRIBUTES
            if item and hierarchy.GetItemAttribute(item, a)
        ]
    if node.GetName():
        texts.append(node.GetName())
    return texts


def guess_node_sequence(node, extra: Iterable[str] = ()) -> Optional[str]:
    """The sequence the first telling description names, or None."""
    for text in node_descriptions(node, extra):
        sequence = guess_sequence(text)
        if sequence is not None:
            return sequence
    return None


def is_mri_volume(node) -> bool:
    """True for a grey-level volume that may hold a sequence (a label map never does)."""
    return node.IsA("vtkMRMLScalarVolumeNode") and not node.IsA("vtkMRMLLabelMapVolumeNode")


def assign_sequences(nodes: Iterable[object], describe: Optional[Describe] = None) -> SequenceMap[object]:
    """One volume per recognised sequence, the first one met winning, in canonical order (label maps,
    whatever their names say, are never taken)."""
    found: Dict[str, object] = {}
    for node in nodes:
        if not is_mri_volume(node):
            continue
        sequence = guess_node_sequence(node, describe(node) if describe else ())
        if sequence is not None and sequence not in found:
            found[sequence] = node
    return SequenceMap(found)


def duplicate_inputs(inputs: Mapping[str, object]) -> List[str]:
    """A warning for each volume chosen for more than one sequence."""
    by_node: Dict[str, List[str]] = {}
    names: Dict[str, str] = {}
    for sequence, node in sequence_map(inputs).items():
        by_node.setdefault(node.GetID(), []).append(DISPLAY_NAMES[sequence])
        names[node.GetID()] = node.GetName()
    return [
        f"{' and '.join(labels)} are the same volume '{names[node_id]}'; choose a different volume for each "
        "sequence, or leave one empty."
        for node_id, labels in by_node.items()
        if len(labels) > 1
    ]
