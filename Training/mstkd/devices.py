"""Choosing the compute device and the precision it supports."""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from mstkd.conventions import DEFAULT_DEVICE, DEVICE_CHOICES
from mstkd.errors import MSTKDError


def resolve_device(name: str = DEFAULT_DEVICE) -> torch.device:
    """'auto' -> CUDA when usable, else CPU; 'cuda' without a usable GPU is an error that says why."""
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
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
    if name == "cpu":
        return torch.device("cpu")
    raise MSTKDError(f"Unknown device '{name}'; use one of {', '.join(DEVICE_CHOICES)} (or cuda:N).")


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
