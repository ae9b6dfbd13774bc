"""mstkd: brain-tumour segmentation from any subset of MRI sequences (MST-KDNet, MAG-MS)."""

from __future__ import annotations

__version__ = "0.1.0"
