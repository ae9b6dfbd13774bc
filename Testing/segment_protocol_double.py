"""A stand-in for `mstkd segment` that speaks its protocol, for testing the Slicer module's process runner.

It parses its arguments with the real command's parser and writes its outputs with the engine's
own progress events, result writer and summary, so it cannot drift from the protocol. Instead of
a network it thresholds the reference volume: > 300 ET, 200..300 NCR, 100..200 ED (in the label
convention asked for). The --model name picks a behaviour: 'missing' fails as a user error
(exit 2), 'crash' with a traceback, 'slow' runs until killed (with a grandchild process whose pid
it reports), 'stubborn' too but ignores SIGTERM, 'wrong-grid' writes the labels on a shifted grid,
'registered' reports a co-registration note. With $MSTKD_DOUBLE_RECORD set, it writes there the
geometry of every input file it read. Its trust is the engine's generic rule (no validation
table); --brain-extraction deepbet or hd-bet reports that tool on the reference, auto and none
report none; --brain-mask writes the reference's voxels above 100.

`segment_protocol_double.py serve` is the warm engine (`mstkd serve`): the engine's own request
loop, with this stand-in doing the segmentations and a fixed CPU device report.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mstkd.cli.main import run
from mstkd.cli.segment import exam_files, register
from mstkd.conventions import DEFAULT_LABELS, label_convention
from mstkd.errors import MSTKDError
from mstkd.inference.events import JsonLinesWriter, ProgressEvent
from mstkd.inference.output import write_result
from mstkd.inference.result import SegmentationResult
from mstkd.inference.volumes import region_volumes_ml
from mstkd.preprocess.brain_extraction import BrainExtraction
from mstkd.preprocess.reference import choose_reference
from mstkd.trust import assess_trust

# What the double reports as its model file's sha256.
MODEL_SHA256 = "ab" * 32


def progress(stage: str, fraction: float, message: str) -> None:
    JsonLinesWriter(sys.stdout)(ProgressEvent(stage, fraction, message))


def parser() -> argparse.ArgumentParser:
    """The real `mstkd segment` parser."""
    root = argparse.ArgumentParser(prog="mstkd")
    register(root.add_subparsers(dest="command"))
    return root


def geometry(image: sitk.Image) -> dict:
    return {
        "size": list(image.GetSize()),
        "spacing": list(image.GetSpacing()),
        "origin": list(image.GetOrigin()),
        "direction": list(image.GetDirection()),
    }


def main(argv=None) -> int:
    """Parse like `mstkd segment`, then run the double the way `mstkd` runs a subcommand."""
    if argv is None and sys.argv[1:2] == ["serve"]:
        return serve()
    args = parser().parse_args(["segment", *(sys.argv[1:] if argv is None else argv)])
    args.run = segment
    return run(args)


def segment(args: argparse.Namespace) -> int:
    inputs = exam_files(args)
    progress("preflight", 0.0, f"checking {len(inputs)} sequence(s)")
    if args.model == "missing":
        raise MSTKDError(
            "'missing' is neither a model file nor a model in the registry; "
            "give the path of a .safetensors model file or one of: demo."
        )
    if args.model == "crash":
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    images = {s: sitk.ReadImage(str(path)) for s, path in inputs.items()}
    if os.environ.get("MSTKD_DOUBLE_RECORD"):
        with open(os.environ["MSTKD_DOUBLE_RECORD"], "w") as stream:
            json.dump({s: geometry(image) for s, image in images.items()}, stream)
    print("loading model " + args.model, file=sys.stderr, flush=True)
    print(" 50%|#####     | 1/2 [00:00<00:00, 9.1it/s]", file=sys.stderr, flush=True)
    if args.model == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.model in ("slow", "stubborn"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        fraction = 0.1
        while True:
            progress("infer", fraction, f"grandchild {child.pid}")
            fraction = min(fraction + 0.01, 0.9)
            time.sleep(0.05)
    reference = choose_reference(inputs, args.reference)
    convention = label_convention(args.labels or DEFAULT_LABELS)
    values = sitk.GetArrayFromImage(images[reference]).astype(np.float32)
    labels = np.zeros(values.shape, dtype=np.uint8)
    labels[(values > 100) & (values <= 200)] = convention.values["ed"]
    labels[(values > 200) & (values <= 300)] = convention.values["ncr"]
    labels[values > 300] = convention.values["et"]
    progress("infer", 0.6, "sliding window 1/1")
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(images[reference])
    if args.model == "wrong-grid":
        image.SetOrigin([o + 7.0 for o in image.GetOrigin()])
    registered = {"kind": "registration", "text": "t2 registered to t1ce: moved 1.2 mm"}
    brain = sitk.Cast(images[reference] > 100, sitk.sitkUInt8)
    extraction = BrainExtraction("none", "the double strips nothing")
    if args.brain_extraction in ("deepbet", "hd-bet"):
        extraction = BrainExtraction(args.brain_extraction, "asked for", reference, brain, 0.5)
    result = SegmentationResult(
        labels=image,
        label_convention=convention.name,
        volumes_ml=region_volumes_ml(labels, convention, image.GetSpacing()),
        sequences=inputs.subset.sequences,
        reference=reference,
        model_name=args.model,
        model_path=Path(f"/models/{args.model}.safetensors"),
        model_sha256=MODEL_SHA256,
        device="cpu",
        timings_s={"inference": 0.1},
        steps=["thresholded the reference volume"],
        notes=[registered] if args.model == "registered" else [],
        brain_extraction=extraction.summary(),
        brain_mask=brain,
        trust=assess_trust(inputs.subset).summary(),
    )
    write_result(result, args.output, args.summary, brain_mask=args.brain_mask)
    progress("done", 1.0, "segmentation written")
    return 0


# What the warm engine's device check reports on a CPU-only machine.
DEVICE_REPORT = {
    "requested": "auto",
    "device": "cpu",
    "kind": "cpu",
    "name": "Test CPU, 2 cores",
    "reason": "this PyTorch (2.13.0+cpu) is built without GPU support",
    "fell_back": False,
    "gpus": [],
    "torch": "2.13.0+cpu",
    "speed": {
        "device": "cpu",
        "seconds_per_window": 0.5,
        "windows_per_batch": 4,
        "patch": [16, 16, 16],
        "spacing": [2.0, 2.0, 2.0],
        "overlap": 0.5,
        "passes": 8,
    },
}


def serve() -> int:
    from mstkd.cli.serve import Server

    def run_segment(argv, replies):
        args = parser().parse_args(["segment", *argv])
        with contextlib.redirect_stdout(replies):
            return {"status": segment(args)}

    def report_device(payload, replies):
        return {"status": 0, "device": {**DEVICE_REPORT, "requested": payload.get("device", "auto")}}

    replies, sys.stdout = sys.stdout, sys.stderr
    return Server(sys.stdin, replies, {"segment": run_segment, "device": report_device}).serve()


if __name__ == "__main__":
    sys.exit(main())
