"""Realistic synthetic BraTS-like cases built from the MNI152 anatomy that nilearn ships.

`generate_case(seed, index, shape)` makes one case in memory (SimpleITK images with their grids);
`write_phantoms(out_dir, cases, seed, layout)` writes cases 0..cases-1 in a BraTS layout. A case
depends on (seed, index) only. Stages, one module each: anatomy (template -> tissue fractions),
tumour (shape, sub-regions, mass effect), contrast (signal per sequence), artefacts (deformation,
blur, bias, noise, scanner units), native (clinical grids), preview (PNG), layout (file names).
Small shapes keep the BraTS field of view with coarser isotropic voxels (see `grid`).
"""

from __future__ import annotations

from mstkd.cases import NATIVE_FOLDER
from mstkd.phantom.generate import PhantomCase, check_case_paths, generate_case, write_case, write_phantoms
from mstkd.phantom.grid import BRATS_SIZE, brats_grid, parse_size
from mstkd.phantom.layout import LAYOUTS, get_layout
from mstkd.phantom.preview import save_preview

__all__ = [
    "BRATS_SIZE",
    "LAYOUTS",
    "NATIVE_FOLDER",
    "PhantomCase",
    "check_case_paths",
    "brats_grid",
    "generate_case",
    "get_layout",
    "parse_size",
    "save_preview",
    "write_case",
    "write_phantoms",
]
