#!/usr/bin/env bash
# The GPU checks of MSTKDSegment in one unattended run: under 8 minutes on one H100/H200.
#
#   bash Testing/gpu/run_gpu_checks.sh [OUT]      (default OUT: runs/gpu-checks)
#
# Measures and prints the paper-size student end to end on a 240x240x155 exam (fp32 and bf16,
# 1-4 sequences, peak GPU memory), a paper-size training step (teacher + student + discriminator,
# fp32 and bf16 beside their baselines, steps/s, peak memory) and the demo model per case; the
# figures go to OUT/all.json, rewritten after each part. Each part has its own time limit, so a
# hung part costs its limit and no more. Without a GPU it says so and exits 0.
set -u
cd "$(dirname "$0")/../.."
OUT="${1:-runs/gpu-checks}"
export PYTHONPATH="$PWD/Training${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"
python -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'GPU visible:', torch.cuda.is_available())"
# The whole run stops at 8 minutes even if a part's own limit failed to.
exec timeout --kill-after=10 480 python -m mstkd bench all --device cuda --out "$OUT"
