"""The phantom generators: which tumour model, contrast table and acquisition make a case.

`standard` makes the training phantoms. `ood` is the out-of-distribution test set: the same
anatomy, but tumours, contrasts and artefacts from rules the training never uses (ood_tumour,
ood_contrast, ood_artefacts). Its cases are held out: each case folder carries a marker that
training refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict

import numpy as np

from mstkd.errors import MSTKDError
from mstkd.phantom.anatomy import Template
from mstkd.phantom.artefacts import acquire
from mstkd.phantom.contrast import compose, sample_contrast
from mstkd.phantom.ood_artefacts import acquire_ood
from mstkd.phantom.ood_contrast import compose_ood, sample_ood_contrast
from mstkd.phantom.ood_tumour import grow_ood_tumour, ood_sites, plan_ood_tumour
from mstkd.phantom.tumour import grow_tumour, plan_tumour


@dataclass(frozen=True)
class Generator:
    """The stages of one kind of phantom (see `generate.generate_case` for the order they run in)."""

    name: str
    description: str
    sites: Callable[[Template], np.ndarray]  # template positions (n, 3) a tumour may be centred on
    plan_tumour: Callable
    grow_tumour: Callable
    sample_contrast: Callable
    compose: Callable
    acquire: Callable
    held_out: bool = False  # a test set: never trained or validated on


GENERATORS: Dict[str, Generator] = {
    generator.name: generator
    for generator in (
        Generator(
            name="standard",
            description="the training phantoms",
            sites=lambda template: template.tumour_sites_mm,
            plan_tumour=plan_tumour,
            grow_tumour=grow_tumour,
            sample_contrast=sample_contrast,
            compose=compose,
            acquire=acquire,
        ),
        Generator(
            name="ood",
            description="out-of-distribution test cases: other tumours, contrasts and artefacts",
            sites=lambda template: ood_sites(),
            plan_tumour=plan_ood_tumour,
            grow_tumour=grow_ood_tumour,
            sample_contrast=sample_ood_contrast,
            compose=compose_ood,
            acquire=acquire_ood,
            held_out=True,
        ),
    )
}
DEFAULT_GENERATOR = "standard"


def get_generator(name: str) -> Generator:
    """Look up a generator by name, or raise naming the valid ones."""
    try:
        return GENERATORS[name.lower()]
    except KeyError:
        raise MSTKDError(
            f"Unknown phantom generator '{name}'; choose one of {', '.join(GENERATORS)}."
        ) from None
