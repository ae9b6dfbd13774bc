"""Precision per device: bf16 only where the hardware computes it, and always with the reason."""

from __future__ import annotations

import pytest
import torch

from mstkd import devices
from mstkd.devices import (
    autocast,
    bf16_support,
    cpu_flags,
    inference_layout,
    inference_precision,
    training_precision,
)
from mstkd.errors import MSTKDError

CPU = torch.device("cpu")
AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma\n"
WITH_BF16 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 avx512f avx512_bf16\n"


@pytest.fixture
def cpuinfo(tmp_path, monkeypatch):
    """Point the CPU probe at a /proc/cpuinfo of our choosing."""

    def use(text: str) -> None:
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        monkeypatch.setattr(devices, "CPUINFO", path)

    return use


def test_a_cpu_without_bf16_instructions_never_gets_bf16(cpuinfo):
    cpuinfo(AVX2_ONLY)
    native, why = bf16_support(CPU)
    assert not native and "neither amx_bf16 nor avx512_bf16" in why
    assert training_precision(CPU, bf16=True).name == "fp32"
    assert "emulated" in training_precision(CPU, bf16=True).reason
    assert inference_precision(CPU, "bf16").name == "fp32"
    with autocast(CPU, True):
        assert not torch.is_autocast_enabled("cpu")


def test_a_cpu_with_avx512_bf16_trains_in_bf16_when_asked(cpuinfo):
    cpuinfo(WITH_BF16)
    assert bf16_support(CPU) == (True, "the CPU has avx512_bf16")
    assert training_precision(CPU, bf16=True).bf16
    assert not training_precision(CPU, bf16=False).bf16
    with autocast(CPU, True):
        assert torch.is_autocast_enabled("cpu")


def test_cpu_inference_stays_fp32_unless_bf16_is_asked_for(cpuinfo):
    cpuinfo(WITH_BF16)
    assert inference_precision(CPU).name == "fp32"
    assert inference_precision(CPU, "bf16").name == "bf16"
    assert inference_precision(CPU, "fp32") == devices.Precision("fp32", "asked for")
    with pytest.raises(MSTKDError, match="Unknown precision 'fp16'"):
        inference_precision(CPU, "fp16")


def test_without_proc_cpuinfo_pytorch_probes_decide(tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "CPUINFO", tmp_path / "missing")
    probed = {
        "avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
        "amx_bf16": torch.cpu._is_amx_tile_supported(),
    }
    assert cpu_flags() == {flag for flag, present in probed.items() if present}


def test_a_gpu_that_torch_cannot_see_gets_no_bf16():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert bf16_support(torch.device("cuda")) == (False, "PyTorch sees no GPU")
    assert inference_precision(torch.device("cuda")).name == "fp32"


def test_layouts():
    assert inference_layout(CPU) == "channels_last"
    assert devices.inference_memory_format(CPU) == torch.channels_last_3d
    assert inference_layout(torch.device("cuda")) == "default"
