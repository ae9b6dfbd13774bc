"""Choosing the compute device, the precision it computes fast, and the memory layout it prefers."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import ContextManager, FrozenSet, Tuple

import torch

from mstkd.conventions import DEFAULT_DEVICE, parse_device
from mstkd.errors import MSTKDError

# bf16 tensor cores arrived with compute capability 8.0 (A100); older GPUs emulate bf16.
CUDA_BF16_CAPABILITY = (8, 0)
# CPU flags (as /proc/cpuinfo names them) of bf16 arithmetic in hardware; without one, PyTorch
# emulates bf16 in fp32 registers and autocast ran many times slower than fp32.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# Where /proc/cpuinfo is missing (macOS, Windows): PyTorch's own probes of the same features.
_TORCH_CPU_PROBES = {"amx_bf16": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}
CPUINFO = Path("/proc/cpuinfo")
# What a caller may ask inference to run in; "auto" lets the device decide (inference_precision).
PRECISIONS = ("auto", "fp32", "bf16")
# Memory layouts of 5-D activations and weights: PyTorch's default (channels first) and channels-last.
LAYOUTS = {"default": torch.contiguous_format, "channels_last": torch.channels_last_3d}


@dataclass(frozen=True)
class Precision:
    """The precision a job runs in, and why it was chosen."""

    name: str  # "bf16" or "fp32"
    reason: str

    @property
    def bf16(self) -> bool:
        """True for bfloat16 autocast."""
        return self.name == "bf16"

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def resolve_device(name: str = DEFAULT_DEVICE) -> torch.device:
    """'auto' -> CUDA when usable, else Apple's GPU (MPS), else CPU; an unusable choice is an error
    that says why."""
    name = parse_device(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MSTKDError(
                "A GPU was requested but PyTorch sees none (no NVIDIA driver, or a CPU-only PyTorch build). "
                "Use --device cpu or auto, or install the PyTorch build for your CUDA version."
            )
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise MSTKDError(f"{name} does not exist: this machine has {torch.cuda.device_count()} GPU(s).")
        return device
    if name == "mps":
        if not mps_available():
            raise MSTKDError(
                "Apple's GPU (MPS) was requested but this PyTorch cannot use it (it needs an Apple-silicon "
                "Mac with macOS 12.3 or later and a PyTorch built with MPS). Use --device cpu or auto."
            )
        return torch.device("mps")
    return torch.device("cpu")


def mps_available() -> bool:
    """True where PyTorch can run on Apple's GPU (Metal Performance Shaders)."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def bf16_support(device: torch.device) -> Tuple[bool, str]:
    """Whether `device` computes bfloat16 in hardware, and what says so."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False, "PyTorch sees no GPU"
        capability = torch.cuda.get_device_capability(device)
        gpu = f"{torch.cuda.get_device_name(device)}, compute capability {capability[0]}.{capability[1]}"
        if capability >= CUDA_BF16_CAPABILITY:
            return True, f"{gpu}: bf16 tensor cores"
        return False, f"{gpu}: no bf16 tensor cores (from 8.0)"
    if device.type == "cpu":
        found = [flag for flag in CPU_BF16_FLAGS if flag in cpu_flags()]
        if found:
            return True, f"the CPU has {' and '.join(found)}"
        return False, f"the CPU has neither {' nor '.join(CPU_BF16_FLAGS)}: bf16 would be emulated, slowly"
    return False, f"bf16 is not checked on {device.type}"


def supports_bf16(device: torch.device) -> bool:
    """True where bfloat16 autocast runs in hardware (see bf16_support)."""
    return bf16_support(device)[0]


def training_precision(device: torch.device, bf16: bool) -> Precision:
    """bf16 when asked for (train.bf16, `bench`) and the device computes it in hardware, else fp32."""
    if not bf16:
        return Precision("fp32", "bf16 not asked for")
    native, why = bf16_support(device)
    return Precision("bf16" if native else "fp32", why)


def inference_precision(device: torch.device, requested: str = "auto") -> Precision:
    """The precision of inference on `device`: `requested` (one of PRECISIONS), where it can run.

    "auto" is bf16 on a GPU with bf16 tensor cores and fp32 elsewhere, the CPU included: on a
    CPU with bf16 instructions, bf16 would be faster but moves labels at the 0.5 threshold, and
    fp32 labels do not depend on the machine's instruction set.
    """
    if requested not in PRECISIONS:
        raise MSTKDError(f"Unknown precision '{requested}'; use one of {', '.join(PRECISIONS)}.")
    if requested == "fp32":
        return Precision("fp32", "asked for")
    native, why = bf16_support(device)
    if requested == "bf16" or device.type == "cuda":
        return Precision("bf16" if native else "fp32", why)
    return Precision("fp32", "the CPU runs inference in fp32")


def autocast(device: torch.device, bf16: bool) -> ContextManager:
    """bfloat16 autocast on `device` when asked for and computed in hardware, else a no-op context."""
    if bf16 and supports_bf16(device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def inference_layout(device: torch.device) -> str:
    """The memory layout (a key of LAYOUTS) inference networks run in on `device`.

    Channels-last ran the networks faster on the CPU at the same labels (`mstkd bench model`
    prints the ratio); a GPU keeps the default until the same benchmark shows it pays there.
    """
    return "channels_last" if device.type == "cpu" else "default"


def inference_memory_format(device: torch.device, layout: str = "auto") -> torch.memory_format:
    """The torch memory format of `resolve_layout(device, layout)`."""
    return LAYOUTS[resolve_layout(device, layout)]


def resolve_layout(device: torch.device, layout: str) -> str:
    """`layout` (a key of LAYOUTS), or for "auto" the one inference runs fastest in on `device`."""
    return inference_layout(device) if check_layout(layout) == "auto" else layout


def check_layout(layout: str) -> str:
    """`layout` when it is "auto" or a key of LAYOUTS; else an error naming the choices."""
    if layout != "auto" and layout not in LAYOUTS:
        raise MSTKDError(f"Unknown memory layout {layout!r}; choose auto, {', '.join(LAYOUTS)}.")
    return layout


def cpu_flags() -> FrozenSet[str]:
    """The CPU's feature flags: /proc/cpuinfo where there is one, else PyTorch's probes."""
    try:
        text = CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    probes = {flag: getattr(torch.cpu, probe, None) for flag, probe in _TORCH_CPU_PROBES.items()}
    return frozenset(flag for flag, probe in probes.items() if probe is not None and probe())
