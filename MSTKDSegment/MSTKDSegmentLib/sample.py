"""The synthetic case in Slicer's Sample Data module: a small file that says which phantom to generate.

Sample Data loads what it "downloads" through a file reader, whether the user clicks the sample
or code calls `SampleData.downloadSample()`. So the sample is this file, fetched from the
module's resources (a file:// address) and read by the module's reader for SAMPLE_FILE_TYPE,
which generates the exam it names: one path, the same from the GUI and from code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Tuple

from mstkd.errors import MSTKDError

SAMPLE_FILE_TYPE = "MSTKDSyntheticCase"
SAMPLE_EXTENSION = ".mstkdsample"
SAMPLE_FILE = (
    Path(__file__).resolve().parents[1] / "Resources" / "Data" / f"MSTKDSyntheticCase{SAMPLE_EXTENSION}"
)


def sample_uri(path: Path = SAMPLE_FILE) -> str:
    """The address Sample Data fetches the sample file from."""
    return Path(path).resolve().as_uri()


def read_sample(path) -> Tuple[int, Tuple[int, int, int]]:
    """The seed and shape of the phantom a sample file names."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        seed = int(data["seed"])
        shape = tuple(int(n) for n in data["shape"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise MSTKDError(f"{path} is not a synthetic-case file of this module ({error}).") from None
    if len(shape) != 3 or min(shape) < 16:
        raise MSTKDError(
            f"{path} names a phantom of shape {list(shape)}; it needs three sizes of 16 or more."
        )
    return seed, shape  # type: ignore[return-value]
