"""`mstkd segment`: segment brain tumours from any subset of FLAIR, T1, T1ce, T2 (one exam or a folder)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, TextIO, Tuple

from mstkd.cli.options import add_device, add_mirror_axes, add_model
from mstkd.conventions import (
    BRAIN_EXTRACTION_CHOICES,
    DEFAULT_BRAIN_EXTRACTION,
    LABEL_CONVENTIONS,
    SHORT_NAMES,
    SequenceMap,
    Subset,
    sequence_map,
)

PROGRESS_CHOICES = ("text", "jsonl")
# (model, device, progress=callback) -> a Predictor; see run().
PredictorFactory = Callable[..., Any]
# Share of the overall progress a single exam's segmentation takes; writing the files is the rest.
SEGMENT_SHARE = 0.95

DESCRIPTION = """\
Segment the tumour of one exam from the sequences it has (any of FLAIR, T1, T1ce, T2; files in
NIfTI or NRRD), or of every case in a folder. The label map lands on the reference volume's grid
voxel for voxel (default reference: T1ce, else FLAIR, T2, T1): sequences on other grids are
co-registered to it first. Labels: 1 necrosis/non-enhancing core, 2 oedema, 4 (brats2021) or
3 (brats2023) enhancing tumour.

Exams straight off the scanner (with skull and scalp) are skull-stripped first: with
--brain-extraction auto (the default) when a sequence has non-zero voxels over more than a brain
holds (2.2 L), with the first installed tool that handles the exam's sequences (hd-bet: any
sequence; deepbet: T1 or T1Gd), its mask carried to the other sequences through the
co-registration; --brain-mask OUT writes the brain mask on the reference grid.

One exam:   mstkd segment --flair F.nii.gz --t2 T2.nii.gz -o labels.nii.gz [--summary s.json]
A folder:   mstkd segment --input-dir cases/ --output-dir predictions/ [--sequences flair,t2]
            writes <case_id>.nii.gz and <case_id>.json per case, skips cases already written.

--progress jsonl prints one JSON object per line on stdout ({"stage", "fraction", "message"}),
and nothing else, for programs that run this command (the Slicer module does).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `segment` subcommand."""
    parser = subparsers.add_parser(
        "segment",
        help="segment brain tumours from any subset of FLAIR, T1, T1ce, T2",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    exam = parser.add_argument_group("one exam")
    for sequence, names in SHORT_NAMES.items():
        options = [f"--{name}" for name in names]
        exam.add_argument(
            *options, dest=sequence, type=Path, action=_Once, metavar="FILE", help=f"the {sequence} volume"
        )
    exam.add_argument("-o", "--output", type=Path, metavar="OUT", help="label map to write (.nii.gz, .nrrd)")
    exam.add_argument("--summary", type=Path, metavar="OUT.json", help="also write a JSON summary here")
    exam.add_argument(
        "--brain-mask", type=Path, metavar="OUT", help="also write the brain mask (reference grid) here"
    )
    batch = parser.add_argument_group("a folder of cases")
    batch.add_argument("--input-dir", type=Path, metavar="DIR", help="cases in any BraTS/FeTS layout")
    batch.add_argument("--output-dir", type=Path, metavar="DIR", help="where <case_id>.nii.gz/.json go")
    batch.add_argument(
        "--sequences",
        metavar="LIST",
        help="use only these sequences, e.g. flair,t2 (default: all a case has)",
    )
    parser.add_argument("--reference", metavar="NAME", help="sequence whose grid the labels land on")
    add_model(parser)
    add_device(parser)
    add_mirror_axes(parser)
    parser.add_argument(
        "--labels",
        choices=sorted(LABEL_CONVENTIONS),
        help="label convention of the output (default: the model's)",
    )
    parser.add_argument(
        "--brain-extraction",
        choices=BRAIN_EXTRACTION_CHOICES,
        default=DEFAULT_BRAIN_EXTRACTION,
        help="skull stripping: auto (only when the exam is not skull-stripped; default), a tool, or none",
    )
    parser.add_argument(
        "--progress",
        choices=PROGRESS_CHOICES,
        default="text",
        help="progress as text (stderr) or jsonl (stdout)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace output files that mstkd did not write (never an input)",
    )
    parser.set_defaults(run=run)


class _Once(argparse.Action):
    """Store a sequence's file, refusing a second option (or alias) for the same sequence."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        given = vars(namespace).setdefault("sequence_options", {})
        if self.dest in given:
            parser.error(
                f"{given[self.dest]} and {option_string} both give the {self.dest} sequence; give each "
                "sequence once."
            )
        given[self.dest] = option_string
        setattr(namespace, self.dest, values)


def run(args: argparse.Namespace, load_predictor: Optional[PredictorFactory] = None) -> int:
    """Segment one exam, or every case of --input-dir.

    `load_predictor(model, device, progress)` gives the Predictor to use (default: a new one; the
    warm engine of `mstkd serve` hands back the one it keeps).
    """
    if load_predictor is None:
        from mstkd.inference.predictor import Predictor as load_predictor
    with _progress_output(args.progress) as (emit, out):
        if args.input_dir is not None or args.output_dir is not None:
            return _run_batch(args, emit, out, load_predictor)
        return _run_one(args, emit, out, load_predictor)


def _run_one(args: argparse.Namespace, emit, out: TextIO, load_predictor: PredictorFactory) -> int:
    from mstkd.errors import MSTKDError
    from mstkd.inference.events import SPANS, ProgressEvent, ProgressTracker, scaled
    from mstkd.inference.output import check_outputs, check_space, write_result
    from mstkd.preprocess.inputs import read_exam
    from mstkd.preprocess.reference import choose_reference
    from mstkd.training.distributed import launched_world_size

    files = exam_files(args)
    if not files:
        raise MSTKDError(
            "Give at least one sequence: --flair, --t1, --t1ce or --t2 (each a NIfTI or NRRD file), "
            "or --input-dir and --output-dir for a folder of cases."
        )
    if args.output is None:
        raise MSTKDError("Name the label map to write with -o OUT.nii.gz (or OUT.nrrd).")
    if args.sequences:
        raise MSTKDError("--sequences goes with --input-dir; for one exam, give only the sequences to use.")
    if launched_world_size() > 1:
        raise MSTKDError(
            "torchrun shares the cases of a folder (--input-dir, --output-dir) among its processes; "
            "segment one exam with plain `mstkd segment`."
        )
    choose_reference(files, args.reference)  # a wrong --reference fails before any work
    options = vars(args).get("sequence_options", {})
    check_outputs(
        args.output,
        args.summary,
        {options.get(s, f"--{s}"): p for s, p in files.items()},
        args.overwrite,
        brain_mask=args.brain_mask,
    )
    _remove_stale_partials(args.output, args.summary, args.brain_mask)

    # Inputs and outputs are checked before the model is loaded: a mistake costs no model time.
    tracker = ProgressTracker(scaled(emit, 0.0, SEGMENT_SHARE))
    exam = read_exam(files, args.reference, tracker.span("load", *SPANS["load"]))
    check_space(args.output, args.summary, exam.images[exam.reference])

    tracker("load", SPANS["load"][1], f"loading model {args.model} ({args.device})")
    predictor = load_predictor(args.model, args.device, progress=scaled(emit, 0.0, 0.0))
    predictor = predictor.with_output(mirror_axes=args.mirror_axes)
    result = predictor.segment_exam(
        exam,
        progress=scaled(emit, 0.0, SEGMENT_SHARE),
        labels=args.labels,
        brain_extraction=args.brain_extraction,
        brain_mask=args.brain_mask is not None,
    )
    emit(ProgressEvent("write", SEGMENT_SHARE, f"writing {args.output}"))
    summary = write_result(result, args.output, args.summary, brain_mask=args.brain_mask)
    emit(ProgressEvent("write", 1.0, f"wrote {args.output}"))
    for note in [*result.fallbacks, *result.warnings]:
        print(f"mstkd segment: warning: {note}", file=sys.stderr)
    print(_describe(summary, args.summary), file=out)
    return 0


def _run_batch(args: argparse.Namespace, emit, out: TextIO, load_predictor: PredictorFactory) -> int:
    from mstkd.cases import MISSING_SEGMENTATION, MISSING_SEQUENCES, discover_cases
    from mstkd.conventions import parse_subset
    from mstkd.errors import MSTKDError
    from mstkd.files import check_writable, make_folder
    from mstkd.training import distributed

    given = [f"--{s}" for s in exam_files(args)]
    one_exam = (("-o", args.output), ("--summary", args.summary), ("--brain-mask", args.brain_mask))
    given += [name for name, value in one_exam if value is not None]
    if given:
        raise MSTKDError(f"{', '.join(given)} name(s) one exam; with --input-dir, leave them out.")
    if args.input_dir is None or args.output_dir is None:
        raise MSTKDError("A folder of cases needs both --input-dir DIR and --output-dir DIR.")
    wanted = parse_subset(args.sequences) if args.sequences else None
    discovery = discover_cases(args.input_dir)
    for problem in discovery.problems:
        if problem.kind not in (MISSING_SEGMENTATION, MISSING_SEQUENCES):
            print(f"mstkd segment: warning: {problem.message}", file=sys.stderr)
    if args.output_dir.exists() and not args.output_dir.is_dir():
        raise MSTKDError(f"{args.output_dir} is a file; give a folder for the label maps.")
    check_writable(args.output_dir)
    make_folder(args.output_dir)
    context = distributed.start(args.device)
    try:
        return _segment_share(args, emit, out, discovery.cases, wanted, context, load_predictor)
    finally:
        distributed.stop(context)


def _segment_share(
    args: argparse.Namespace, emit, out: TextIO, cases, wanted, context, load_predictor: PredictorFactory
) -> int:
    """Segment this process's share of the cases not yet written (all of them in a single process).

    Under torchrun every rank lists the same unfinished cases, after rank 0 has removed files
    half-written by an interrupted run and before anyone writes, and takes every
    world_size-th one from its rank: no case twice, none left out, and a rerun resumes.
    """
    from mstkd.errors import MSTKDError
    from mstkd.inference.events import scaled
    from mstkd.inference.output import CASE_OUTPUTS, check_outputs, check_space, is_finished, write_result
    from mstkd.preprocess.inputs import read_exam
    from mstkd.progress import progress
    from mstkd.training import distributed

    who = f"rank {context.rank} of {context.world_size}: " if context.enabled else ""
    if context.is_main:
        _remove_stale_partials(args.output_dir)
    distributed.barrier(context)
    outputs = {
        case.case_id: (args.output_dir / f"{case.case_id}.nii.gz", args.output_dir / f"{case.case_id}.json")
        for case in cases
    }
    finished = {case_id for case_id, (output, summary) in outputs.items() if is_finished(output, summary)}
    pending = [case for case in cases if case.case_id not in finished]
    skipped = [case.case_id for case in cases if case.case_id in finished] if context.is_main else []
    distributed.barrier(context)
    share = pending[context.rank :: context.world_size]

    predictor = load_predictor(args.model, str(context.device), progress=scaled(emit, 0.0, 0.0))
    predictor = predictor.with_output(mirror_axes=args.mirror_axes)
    done: List[str] = []
    failed: List[Tuple[str, str]] = []
    bar = progress(share, "cases", total=len(share))
    for case_id in skipped:
        _log(bar, f"{case_id}: skipped, {outputs[case_id][0].name} exists")
    for index, case in enumerate(bar):
        output, summary = outputs[case.case_id]
        try:
            files = _case_files(case, wanted)
            inputs = {f"{name} file": path for name, path in case.sequences.items()}
            if case.segmentation is not None:
                inputs["segmentation file"] = case.segmentation
            check_outputs(output, summary, inputs, args.overwrite, names=CASE_OUTPUTS)
            exam = read_exam(files, args.reference)
            check_space(output, summary, exam.images[exam.reference])
            # Text mode shows the bar and a line per case; jsonl gives a program every event.
            events = scaled(emit, index / len(share), (index + 1) / len(share), f"{case.case_id}: ")
            result = predictor.segment_exam(
                exam,
                progress=events if args.progress == "jsonl" else None,
                labels=args.labels,
                brain_extraction=args.brain_extraction,
            )
            write_result(result, output, summary)
        except MSTKDError as error:
            failed.append((case.case_id, str(error)))
            _log(bar, f"{who}{case.case_id}: failed: {error}")
            continue
        except Exception as error:  # one broken case must not stop the batch
            failed.append((case.case_id, f"{type(error).__name__}: {error}"))
            _log(bar, f"{who}{case.case_id}: failed with an unexpected {type(error).__name__}: {error}")
            continue
        done.append(case.case_id)
        for note in [*result.fallbacks, *result.warnings]:
            _log(bar, f"{who}{case.case_id}: warning: {note}")
        used = f"{', '.join(result.sequences)} on {result.device}"
        _log(bar, f"{who}{case.case_id}: wrote {output.name} ({used})")
    bar.close()
    print(
        f"{who}{len(done)} case(s) segmented, {len(skipped)} skipped (already written), "
        f"{len(failed)} failed; label maps in {args.output_dir}",
        file=out,
    )
    for case_id, message in failed:
        print(f"mstkd segment: error: case {case_id}: {message}", file=sys.stderr)
    return 1 if failed else 0


def exam_files(args: argparse.Namespace) -> SequenceMap[Path]:
    """The files of the one exam given with --flair, --t1, --t1ce, --t2 (or their short names)."""
    return sequence_map({sequence: getattr(args, sequence) for sequence in SHORT_NAMES})


def _remove_stale_partials(*paths: Optional[Path]) -> None:
    """Delete what killed runs left half-written beside these outputs (in their folders)."""
    from mstkd.files import remove_stale_partials

    folders = [p if p.is_dir() else p.parent for p in paths if p is not None]
    for leftover in remove_stale_partials(folders):
        print(f"mstkd segment: removed {leftover.name}, half-written by an interrupted run", file=sys.stderr)


def _case_files(case, wanted: Optional[Subset]) -> SequenceMap[Path]:
    """The files of a case to segment from: all it has, or exactly the --sequences asked for."""
    from mstkd.errors import MSTKDError

    if wanted is None:
        return case.sequences
    missing = [s for s in wanted.sequences if s not in case.sequences]
    if missing:
        raise MSTKDError(f"the case lacks {', '.join(missing)}, asked for with --sequences")
    return SequenceMap({s: case.sequences[s] for s in wanted.sequences})


@contextlib.contextmanager
def _progress_output(kind: str) -> Iterator[tuple]:
    """(progress callback, stream for the final report): jsonl keeps stdout for the events alone."""
    from mstkd.inference.events import JsonLinesWriter, TextWriter

    if kind == "jsonl":
        events = sys.stdout
        # Anything else printed while segmenting (by this code or a library) goes to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            yield JsonLinesWriter(events), sys.stderr
    else:
        yield TextWriter(sys.stderr), sys.stdout


def _log(bar, message: str) -> None:
    bar.write(message, file=sys.stderr)


def _describe(summary: dict, summary_path: Optional[Path]) -> str:
    from mstkd.preprocess.brain_extraction import describe_summary

    volumes = "  ".join(f"{k} {v:.2f}" for k, v in summary["volumes_ml"].items())
    model = summary["model"]
    lines = [
        f"Wrote {summary['output']} (labels {summary['labels']} on the {summary['reference']} grid; "
        f"from {', '.join(summary['sequences'])})",
        f"Volumes (mL): {volumes}",
        f"Brain extraction: {describe_summary(summary['brain_extraction'])}",
        *(f"Warning: {warning}" for warning in summary["trust"]["warnings"]),
        f"Model {model['name']} (sha256 {model['sha256'][:12]}...) on {summary['device']}, "
        f"{summary['timings_s']['total']:.1f} s",
    ]
    if summary.get("brain_mask"):
        lines.append(f"Brain mask: {summary['brain_mask']}")
    if summary_path is not None:
        lines.append(f"Summary: {summary_path}")
    return "\n".join(lines)
