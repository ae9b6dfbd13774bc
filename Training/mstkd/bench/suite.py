"""`mstkd bench all`: the GPU checks in one unattended run, part by part, each under a time limit.

Each part is one `mstkd bench` command in its own process (a hung or crashed part cannot take
the others with it) that writes its JSON after every row; `all.json` is rewritten after every
part, so whatever was measured before a time limit or a crash is kept. The limits add up to
under 8 minutes on one H100/H200.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from mstkd.errors import MSTKDError

PAPER_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "paper.yaml"


@dataclass(frozen=True)
class Part:
    """One benchmark command of the suite and the seconds it may take."""

    name: str
    arguments: Tuple[str, ...]  # after `mstkd bench`
    limit_s: int


def parts(device: str) -> List[Part]:
    """The suite's parts, in the order they run."""
    paper = ("--config", str(PAPER_CONFIG), "--device", device)
    fp32, bf16 = ("--precision", "fp32", "--repeats", "2"), ("--precision", "bf16", "--repeats", "2")
    demo = ("--model", "demo", "--device", device, "--repeats", "3")
    return [
        Part("paper student per case, fp32", ("inference", *paper, *fp32), 110),
        Part("paper student per case, bf16", ("inference", *paper, *bf16), 90),
        Part("paper training step", ("model", *paper, "--repeats", "3"), 170),
        Part("demo model per case", ("inference", *demo), 70),
    ]


def run_suite(device: str, out: Path) -> int:
    """Run every part on `device` (a GPU) into `out`; without a GPU, say so, write why, return 0."""
    out.mkdir(parents=True, exist_ok=True)
    summary: Dict[str, Any] = {"device": device, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "parts": []}
    skipped = _why_skipped(device)
    if skipped is not None:
        summary["skipped"] = skipped
        _write(out, summary)
        print(f"mstkd bench all: skipped: {skipped}")
        return 0
    failures = 0
    for part in parts(device):
        record = _run_part(part, out)
        failures += record["status"] != "ok"
        summary["parts"].append(record)
        _write(out, summary)
    print(f"mstkd bench all: {len(summary['parts']) - failures} of {len(summary['parts'])} parts ran; {out}")
    return 1 if failures else 0


def _why_skipped(device: str) -> Optional[str]:
    """Why the suite cannot run on `device`, or None when it can."""
    from mstkd.devices import resolve_device

    try:
        resolved = resolve_device(device)
    except MSTKDError as error:
        return str(error)
    if resolved.type != "cuda":
        return f"the GPU checks need a GPU; --device {device} is {resolved}"
    return None


def _run_part(part: Part, out: Path) -> Dict[str, Any]:
    """Run one part under its limit; what it printed and measured, and how it ended."""
    json_path = out / f"{part.name.replace(' ', '-').replace(',', '')}.json"
    command = [sys.executable, "-m", "mstkd", "bench", *part.arguments, "--json", str(json_path)]
    print(f"== {part.name} (at most {part.limit_s} s): mstkd bench {' '.join(part.arguments)}", flush=True)
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=part.limit_s)
        status = "ok" if done.returncode == 0 else f"failed with status {done.returncode}"
        stdout, stderr = done.stdout, done.stderr
    except subprocess.TimeoutExpired as expired:
        status = f"stopped after its limit of {part.limit_s} s"
        stdout, stderr = _text(expired.stdout), _text(expired.stderr)
    printed = [
        line for line in stdout.splitlines() if not line.startswith("{")
    ]  # the JSON line is kept below
    print("\n".join(printed), flush=True)
    if status != "ok":
        print(f"   {status}: {stderr.strip()[-2000:]}", flush=True)
    measured = json.loads(json_path.read_text(encoding="utf-8")) if json_path.exists() else None
    return {
        "part": part.name,
        "command": ["mstkd", "bench", *part.arguments],
        "status": status,
        "seconds": round(time.perf_counter() - started, 1),
        "printed": printed,
        "errors": stderr.strip()[-2000:] if status != "ok" else "",
        "measured": measured,
    }


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


def _write(out: Path, summary: Dict[str, Any]) -> None:
    (out / "all.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
