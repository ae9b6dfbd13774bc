"""`mstkd phantom`: generate realistic synthetic BraTS-like cases."""

from __future__ import annotations

import argparse
import sys

from mstkd.cases import BRAIN_MASK_FOLDER, CLASS_MAP_FOLDER, HELD_OUT_MARKER, NATIVE_FOLDER
from mstkd.phantom.generators import DEFAULT_GENERATOR, GENERATORS
from mstkd.phantom.layout import DEFAULT_LAYOUT, LAYOUTS

DESCRIPTION = (
    """\
Write synthetic brain-tumour cases that look like BraTS exams: four skull-stripped sequences
(FLAIR, T1, T1ce, T2) and the ground truth (NCR/NET, oedema, enhancing tumour), built from the
MNI152 anatomy that nilearn ships. Case k of a seed depends only on (seed, k): the same command
writes the same bytes, and --cases 10 starts with the cases of --cases 3.

Layouts:
  brats2021  BraTS2021_NNNNN/BraTS2021_NNNNN_{flair,t1,t1ce,t2,seg}.nii.gz, labels 1/2/4
  brats2023  BraTS-GLI-NNNNN-000/BraTS-GLI-NNNNN-000-{t2f,t1n,t1c,t2w,seg}.nii.gz, labels 1/2/3

--shape keeps the BraTS field of view (240 x 240 x 155 mm) and the brain's size: a smaller grid
gets coarser isotropic voxels (96,96,64 gives 2.5 mm), 240,240,155 is the BraTS grid itself.

--native also writes the exam as a clinical scanner would, in <case>/NATIVE/ with the same
file names: FLAIR axial 1x1x5 mm (LPS), T1 sagittal 1x1x1.2 mm, T1ce 1 mm isotropic oblique,
T2 axial 0.5x0.5x4 mm (RAS), each moved a little (a few degrees and millimetres) and with its own
field of view; the seg file there lies on the T1ce grid.

--with-skull keeps the head, as a scanner shows it before skull stripping: scalp (fat, skin),
skull (dark cortical bone around fatty marrow), CSF around the brain and the top of the neck,
with noise in the air, on a grid grown to hold the head (10 mm more on each side, 50 mm more
above and below); the true brain mask goes to <case>/BRAINMASK/<case>_brainmask.nii.gz (and, with
--native, to <case>/NATIVE/BRAINMASK/, on the T1ce grid).

--preview writes OUT_DIR/previews/<case>.png: slices through the tumour for each sequence.

--generator ood writes the out-of-distribution test set instead: the same anatomy, but tumours
(multifocal, lobulated, elongated, cystic, infiltrative, nodular; minimal or massive oedema;
closer to the cortex), a contrast table and artefacts (thick slices with gaps, strong bias,
ghosting, motion, uneven Gaussian noise) that training never uses. Each case folder holds a
HELD_OUT marker; `mstkd train` refuses such cases.

--class-maps also writes <case>/CLASSES/<case>_classes.nii.gz, the map of tissue and tumour
classes the images were drawn from (1 CSF, 2 GM, 3 WM, 4 necrosis, 5 non-enhancing tumour core,
6 enhancing tumour, 7 oedema): the input of domain-randomised training (data.synthesis).
""".replace("NATIVE", NATIVE_FOLDER)
    .replace("BRAINMASK", BRAIN_MASK_FOLDER)
    .replace("CLASSES", CLASS_MAP_FOLDER)
    .replace("HELD_OUT", HELD_OUT_MARKER)
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `phantom` subcommand."""
    parser = subparsers.add_parser(
        "phantom",
        help="generate realistic synthetic BraTS-like cases",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write the case folders into")
    parser.add_argument("--cases", type=int, default=1, metavar="N", help="number of cases (default 1)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed, >= 0 (default 0)")
    parser.add_argument(
        "--layout",
        default=DEFAULT_LAYOUT,
        choices=sorted(LAYOUTS),
        help=f"folder layout (default {DEFAULT_LAYOUT})",
    )
    parser.add_argument(
        "--shape", default="240,240,155", metavar="X,Y,Z", help="grid size (default 240,240,155)"
    )
    parser.add_argument(
        "--generator",
        default=DEFAULT_GENERATOR,
        choices=sorted(GENERATORS),
        help=f"kind of phantom (default {DEFAULT_GENERATOR}; 'ood' for the out-of-distribution test set)",
    )
    parser.add_argument("--native", action="store_true", help="also write each sequence on a clinical grid")
    parser.add_argument(
        "--with-skull", action="store_true", help="keep scalp, skull, CSF and neck; write its brain mask"
    )
    parser.add_argument("--preview", action="store_true", help="also write a PNG per case")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace files under the cases' names that mstkd did not write",
    )
    parser.add_argument(
        "--class-maps", action="store_true", help="also write each case's map of tissue and tumour classes"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Generate the cases and print the folders written."""
    from mstkd.phantom import parse_size, write_phantoms

    folders = write_phantoms(
        args.out_dir,
        cases=args.cases,
        seed=args.seed,
        layout=args.layout,
        shape=parse_size(args.shape),
        native=args.native,
        preview=args.preview,
        class_maps=args.class_maps,
        generator=args.generator,
        show_progress=sys.stderr.isatty(),
        overwrite=args.overwrite,
        with_skull=args.with_skull,
    )
    for folder in folders:
        print(folder)
    return 0
