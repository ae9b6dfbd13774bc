"""A stand-in for `mstkd segment` that speaks its protocol, for testing the Slicer module's process runner.

Same options and outputs as the real command: JSON progress lines on stdout, the label map on the
reference volume's grid (brats2021 labels) and the summary JSON. Instead of a network it
thresholds the reference volume: > 300 ET (4), 200..300 NCR (1), 100..200 ED (2). The --model
name picks a behaviour: 'missing' fails as a user error (exit 2), 'crash' with a traceback,
'slow' runs until killed (with a grandchild process whose pid it reports), 'wrong-grid' writes
the labels on a shifted grid. With $MSTKD_DOUBLE_RECORD set, it writes there the geometry of
every input file it read.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import SimpleITK as sitk

SEQUENCES = ("flair", "t1", "t1ce", "t2")


def progress(stage: str, fraction: float, message: str) -> None:
    print(json.dumps({"stage": stage, "fraction": fraction, "message": message}), flush=True)


def parse(argv):
    parser = argparse.ArgumentParser(prog="mstkd segment")
    for sequence in SEQUENCES:
        parser.add_argument(f"--{sequence}")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--labels", default="brats2021")
    parser.add_argument("--summary")
    parser.add_argument("--progress", default="jsonl")
    return parser.parse_args(argv)


def geometry(image: sitk.Image) -> dict:
    return {
        "size": list(image.GetSize()),
        "spacing": list(image.GetSpacing()),
        "origin": list(image.GetOrigin()),
        "direction": list(image.GetDirection()),
    }


def main(argv=None) -> int:
    args = parse(argv)
    inputs = {s: getattr(args, s) for s in SEQUENCES if getattr(args, s)}
    progress("preflight", 0.0, f"checking {len(inputs)} sequence(s)")
    if args.model == "missing":
        print(
            "mstkd segment: error: 'missing' is neither a model file nor a model in the registry; "
            "give the path of a .safetensors model file or one of: demo.",
            file=sys.stderr,
        )
        return 2
    if args.model == "crash":
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    images = {s: sitk.ReadImage(path) for s, path in inputs.items()}
    if os.environ.get("MSTKD_DOUBLE_RECORD"):
        with open(os.environ["MSTKD_DOUBLE_RECORD"], "w") as stream:
            json.dump({s: geometry(image) for s, image in images.items()}, stream)
    print("loading model " + args.model, file=sys.stderr, flush=True)
    print(" 50%|#####     | 1/2 [00:00<00:00, 9.1it/s]", file=sys.stderr, flush=True)
    if args.model == "slow":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        fraction = 0.1
        while True:
            progress("infer", fraction, f"grandchild {child.pid}")
            fraction = min(fraction + 0.01, 0.9)
            time.sleep(0.05)
    reference = images[args.reference]
    values = sitk.GetArrayFromImage(reference).astype(np.float32)
    labels = np.zeros(values.shape, dtype=np.uint8)
    labels[(values > 100) & (values <= 200)] = 2
    labels[(values > 200) & (values <= 300)] = 1
    labels[values > 300] = 4
    progress("infer", 0.6, "sliding window 1/1")
    result = sitk.GetImageFromArray(labels)
    result.CopyInformation(reference)
    if args.model == "wrong-grid":
        result.SetOrigin([o + 7.0 for o in reference.GetOrigin()])
    sitk.WriteImage(result, args.output, useCompression=True)
    voxel_ml = float(np.prod(reference.GetSpacing())) / 1000.0
    counts = {name: int((labels == value).sum()) for name, value in (("NCR", 1), ("ED", 2), ("ET", 4))}
    volumes = {name: count * voxel_ml for name, count in counts.items()}
    volumes["WT"] = volumes["NCR"] + volumes["ED"] + volumes["ET"]
    volumes["TC"] = volumes["NCR"] + volumes["ET"]
    if args.summary:
        summary = {
            "output": args.output,
            "reference": args.reference,
            "sequences": list(inputs),
            "model": {"name": args.model, "path": f"/models/{args.model}.safetensors", "sha256": "ab" * 32},
            "device": "cpu",
            "labels": args.labels,
            "volumes_ml": volumes,
            "timings_s": {"total": 0.1},
            "steps": ["threshold"],
        }
        with open(args.summary, "w") as stream:
            json.dump(summary, stream)
    progress("done", 1.0, "segmentation written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
