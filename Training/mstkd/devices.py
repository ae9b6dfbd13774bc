"""Choosing the compute device and the precision it supports."""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from mstkd.conventions import DEFAULT_DEVICE, parse_device
from mstkd.errors import MSTKDError


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


def supports_bf16(device: torch.device) -> bool:
    """True where bfloat16 autocast runs natively (CUDA with bf16 support, or the CPU)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu"


def autocast(device: torch.device, bf16: bool) -> ContextManager:
    """bfloat16 autocast on `device` when asked for and supported, else a no-op context."""
    if bf16 and supports_bf16(device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
