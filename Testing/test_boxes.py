"""Bounding boxes (mstkd.boxes) and the picture they crop."""

from __future__ import annotations

import numpy as np

from mstkd.boxes import bounding_box, grown, union
from mstkd.figures import is_our_picture, save_slice_grid


def test_a_box_is_found_grown_within_the_array_and_joined():
    mask = np.zeros((10, 12, 8), dtype=bool)
    mask[2:5, 7:12, 0] = True
    box = bounding_box(mask)
    assert box == (slice(2, 5), slice(7, 12), slice(0, 1))
    assert grown(box, 3, mask.shape) == (slice(0, 8), slice(4, 12), slice(0, 4))
    assert bounding_box(np.zeros_like(mask)) is None and grown(None, 3, mask.shape) is None
    other = (slice(6, 7), slice(0, 1), slice(5, 8))
    assert union([box, None, other]) == (slice(2, 7), slice(0, 12), slice(0, 8))


def test_a_picture_of_an_empty_image_shows_the_whole_grid(tmp_path):
    empty = np.zeros((6, 8, 10), dtype=np.float32)
    path = save_slice_grid([("blank", empty, None)], empty, (1.0, 1.0, 1.0), "brats2021", tmp_path / "p.png")
    assert is_our_picture(path)
