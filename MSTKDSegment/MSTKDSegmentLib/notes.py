"""Notes kept with a result: what a reader of the segmentation should know about how it was made.

The sequences used and those missing, the brain extraction, the regions the given sequences cannot
support (the summary's trust), the device, every co-registration and every fallback the engine
took, stored on the segmentation node (so they are saved with the scene) and shown in the panel
after the run. A note has a kind, a level and a text; a new kind needs only a title in NOTE_TITLES
and a producer.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Iterable, List, Mapping, Sequence

from mstkd.conventions import DISPLAY_NAMES, make_subset
from mstkd.preprocess.brain_extraction import describe_summary

NOTES_ATTRIBUTE = "MSTKD.Notes"
INFO = "info"
WARNING = "warning"
# Titles of the kinds of notes, in the order the panel shows them.
NOTE_TITLES = {
    "check": "Check",
    "trust": "Trust",
    "sequences": "Sequences",
    "brain-extraction": "Brain extraction",
    "registration": "Registration",
    "fallback": "Fallback",
    "device": "Device",
}


@dataclass(frozen=True)
class Note:
    """One thing to know about a result."""

    kind: str
    text: str
    level: str = INFO


def result_notes(summary: Mapping[str, Any], sequences: Sequence[str]) -> List[Note]:
    """The notes of a finished run, from the engine's summary and the sequences the run was given."""
    subset = make_subset(summary.get("sequences") or sequences)
    text = f"segmented from {' + '.join(DISPLAY_NAMES[s] for s in subset.sequences)}"
    if subset.absent:
        absent = ", ".join(DISPLAY_NAMES[s] for s in subset.absent)
        text += f"; {absent} not available (the model works without them)"
    notes = [Note("sequences", text)]
    extraction = summary.get("brain_extraction")
    if isinstance(extraction, Mapping):
        notes.append(Note("brain-extraction", describe_summary(extraction)))
    trust = summary.get("trust")
    if isinstance(trust, Mapping):
        # Regions the given sequences cannot support: segmented, but not to be relied on.
        notes += [Note("trust", str(text), WARNING) for text in trust.get("warnings") or [] if text]
    for item in summary.get("notes") or []:
        if isinstance(item, Mapping) and item.get("text"):
            kind = str(item.get("kind") or "engine")
            level = WARNING if kind == "fallback" else str(item.get("level") or INFO)
            notes.append(Note(kind, str(item["text"]), level))
    # What the engine found suspect about the inputs or the model: the user must check the result.
    notes += [Note("check", str(text), WARNING) for text in summary.get("warnings") or [] if text]
    if summary.get("device"):
        notes.append(Note("device", f"ran on {summary['device']}"))
    return ordered(notes)


def ordered(notes: Iterable[Note]) -> List[Note]:
    """Warnings first, then by kind in NOTE_TITLES order (unknown kinds last), keeping their order."""
    rank = {kind: index for index, kind in enumerate(NOTE_TITLES)}
    return sorted(notes, key=lambda n: (n.level != WARNING, rank.get(n.kind, len(rank))))


def store_notes(segmentation_node, notes: Iterable[Note]) -> None:
    """Keep the notes on the segmentation node (a JSON attribute, saved with the scene)."""
    segmentation_node.SetAttribute(NOTES_ATTRIBUTE, json.dumps([asdict(note) for note in notes]))


def read_notes(segmentation_node) -> List[Note]:
    """The notes kept on a segmentation node (none when it has no readable ones)."""
    try:
        items = json.loads(segmentation_node.GetAttribute(NOTES_ATTRIBUTE) or "[]")
    except ValueError:
        return []
    return [
        Note(str(item.get("kind", "")), str(item["text"]), str(item.get("level", INFO)))
        for item in items
        if isinstance(item, dict) and item.get("text")
    ]


def format_notes(notes: Iterable[Note]) -> str:
    """The notes as lines for people: '<Title>: <text>', warnings marked."""
    lines = []
    for note in notes:
        title = NOTE_TITLES.get(note.kind, note.kind.replace("-", " ").capitalize())
        mark = "Warning - " if note.level == WARNING else ""
        lines.append(f"{mark}{title}: {note.text}")
    return "\n".join(lines)
