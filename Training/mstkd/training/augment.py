"""Training augmentations that keep what inference sees: 0 outside the brain, z-scores inside.

Acquisition augmentations act on each raw sequence separately (each scan has its own bias field,
resolution and noise), before the normalisation that inference uses: gamma, a random monotone
intensity curve, bias field, uneven slice gains, ghosting, blur, noise, thick slices along a
random axis, and lower resolution (MONAI transforms where they exist).
A sequence is first divided by its brain mean, so strengths are relative, and afterwards is 0
outside its brain again (skull stripping follows acquisition). After normalisation and the crop
come flips, a random affine and elastic deformation (images and labels together), and a scale
and shift of each z-scored channel inside the brain only.
"""

from __future__ import annotations

from typing import Any, Dict, Hashable, List, Mapping, Sequence

import numpy as np
import torch
from monai.transforms import (
    Compose,
    MapTransform,
    Rand3DElasticd,
    RandAdjustContrast,
    RandAffined,
    RandBiasField,
    RandGaussianNoise,
    RandGaussianSmooth,
    RandHistogramShift,
    Randomizable,
    RandomizableTransform,
    RandSimulateLowResolution,
)
from monai.transforms.transform import Transform

from mstkd.experiment.sections import Augmentation

FLOOR = 1e-3  # brain voxels stay above zero: zero means "outside the brain"


class RandThickSlices(RandomizableTransform):
    """Simulate thick slices along a random axis: average `factor` voxels per slice, interpolate back."""

    def __init__(self, prob: float, factor_range: Sequence[float]) -> None:
        RandomizableTransform.__init__(self, prob)
        self.factor_range = tuple(factor_range)
        self.axis, self.factor = 0, 1.0

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self.axis = int(self.R.randint(3))
        self.factor = float(self.R.uniform(*self.factor_range))

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return img
        volume = torch.as_tensor(img, dtype=torch.float32).as_subclass(torch.Tensor)[None]
        size = list(volume.shape[2:])
        size[self.axis] = max(1, int(round(size[self.axis] / self.factor)))
        thick = torch.nn.functional.interpolate(volume, size=size, mode="area")
        back = torch.nn.functional.interpolate(
            thick, size=volume.shape[2:], mode="trilinear", align_corners=False
        )
        return back[0]


class RandSliceGain(RandomizableTransform):
    """Uneven slice intensities along a random axis, each slice times a gain in 1 + U(-s, s): one
    gain per slice, one for odd and one for even slices (interleaved acquisition), or one per slab
    of consecutive slices (two to four slabs, as from stacks acquired apart)."""

    def __init__(self, prob: float, strength: float) -> None:
        RandomizableTransform.__init__(self, prob)
        self.strength = strength
        self.axis, self.gains = 0, np.ones(1, dtype=np.float32)

    def randomize(self, slices: Sequence[int]) -> None:
        super().randomize(None)
        self.axis = int(self.R.randint(3))
        count = int(slices[self.axis])
        pattern = self.R.randint(3)
        if pattern == 0:
            groups = np.arange(count)
        elif pattern == 1:
            groups = np.arange(count) % 2
        else:  # one to three cuts between slices: two to four slabs
            cuts = self.R.choice(np.arange(1, max(count, 2)), size=min(int(self.R.randint(1, 4)), count - 1))
            groups = np.searchsorted(np.sort(cuts), np.arange(count), side="right")
        self.gains = 1.0 + self.R.uniform(-self.strength, self.strength, size=int(groups.max()) + 1)[groups]

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        volume = torch.as_tensor(img, dtype=torch.float32).as_subclass(torch.Tensor)
        if randomize:
            self.randomize(volume.shape[1:])
        if not self._do_transform:
            return volume
        shape = [1, 1, 1]
        shape[self.axis] = -1
        return volume * torch.as_tensor(self.gains, dtype=torch.float32).view(1, *shape)


class RandGhosting(RandomizableTransform):
    """Ghosts along a random axis, as a k-space line pattern makes them (EPI's N/2 ghost and kin):
    every n-th line of k-space (n from 2 to 4) scaled by 1 - U(strength range), which adds faint
    copies of the head shifted by multiples of 1/n of the field of view."""

    def __init__(self, prob: float, strength: Sequence[float]) -> None:
        RandomizableTransform.__init__(self, prob)
        self.strength = tuple(strength)
        self.axis, self.period, self.scale = 0, 2, 1.0

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self.axis = int(self.R.randint(3))
        self.period = int(self.R.randint(2, 5))
        self.scale = 1.0 - float(self.R.uniform(*self.strength))

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        if randomize:
            self.randomize()
        volume = torch.as_tensor(img, dtype=torch.float32).as_subclass(torch.Tensor)
        if not self._do_transform:
            return volume
        spectrum = torch.fft.fftn(volume, dim=(1, 2, 3))
        lines = torch.ones(volume.shape[1 + self.axis])
        lines[:: self.period] = self.scale
        shape = [1, 1, 1, 1]
        shape[1 + self.axis] = -1
        return torch.fft.ifftn(spectrum * lines.view(shape), dim=(1, 2, 3)).abs()


def acquisition_transforms(a: Augmentation) -> List[Transform]:
    """The per-sequence acquisition augmentations switched on in `a` (probability > 0), in order."""
    blur = (a.blur_sigma[0], a.blur_sigma[1])
    candidates = [
        (a.gamma_probability, lambda p: RandAdjustContrast(prob=p, gamma=a.gamma_range)),
        (
            a.intensity_curve_probability,
            lambda p: RandHistogramShift(num_control_points=a.intensity_curve_points, prob=p),
        ),
        (
            a.bias_probability,
            lambda p: RandBiasField(coeff_range=(-a.bias_strength, a.bias_strength), prob=p),
        ),
        (a.slice_gain_probability, lambda p: RandSliceGain(p, a.slice_gain_strength)),
        (a.ghosting_probability, lambda p: RandGhosting(p, a.ghosting_strength)),
        (a.blur_probability, lambda p: RandGaussianSmooth(sigma_x=blur, sigma_y=blur, sigma_z=blur, prob=p)),
        (a.noise_probability, lambda p: RandGaussianNoise(prob=p, std=a.noise_std)),
        (a.thick_slice_probability, lambda p: RandThickSlices(p, a.thick_slice_factor)),
        (
            a.low_resolution_probability,
            lambda p: RandSimulateLowResolution(prob=p, zoom_range=a.low_resolution_zoom),
        ),
    ]
    return [make(probability) for probability, make in candidates if probability > 0]


class AugmentSequencesd(Randomizable, MapTransform):
    """Apply the acquisition augmentations to each channel of a raw (4, ...) volume, each its own draw."""

    def __init__(self, key: str, transforms: Sequence[Transform]) -> None:
        super().__init__(keys=[key])
        self.transforms = Compose(list(transforms))

    def set_random_state(self, seed: Any = None, state: Any = None) -> AugmentSequencesd:
        super().set_random_state(seed, state)
        self.transforms.set_random_state(seed=int(self.R.randint(2**31)))
        return self

    def randomize(self, data: Any = None) -> None:
        """Each channel draws from the inner transforms' own streams."""

    def __call__(self, sample: Mapping[Hashable, Any]) -> Dict[Hashable, Any]:
        out = dict(sample)
        for key in self.key_iterator(out):
            raw = np.asarray(out[key], dtype=np.float32)
            augmented = np.zeros_like(raw)
            for channel, volume in enumerate(raw):
                brain = volume != 0
                if not brain.any():
                    continue
                relative = volume / np.float32(volume[brain].mean())
                changed = np.asarray(self.transforms(relative[None]), dtype=np.float32)[0]
                augmented[channel] = np.where(brain, np.maximum(changed, FLOOR), 0.0)
            out[key] = augmented
        return out


class RandScaleShiftBraind(Randomizable, MapTransform):
    """Scale and shift each z-scored channel by random amounts, inside the brain only (0 stays 0).

    One draw per sample (as MONAI's RandScaleIntensityd), shared by the keys (teacher and student).
    """

    def __init__(self, keys: Sequence[str], scale: float, shift: float, probability: float) -> None:
        super().__init__(keys=keys)
        self.scale, self.shift, self.probability = scale, shift, probability
        self.factors = self.offsets = None

    def randomize(self, data: Any = None) -> None:
        self.apply = self.R.random_sample() < self.probability
        self.factors = self.R.uniform(-self.scale, self.scale, size=4)
        self.offsets = self.R.uniform(-self.shift, self.shift, size=4)

    def __call__(self, sample: Mapping[Hashable, Any]) -> Dict[Hashable, Any]:
        self.randomize()
        out = dict(sample)
        if not self.apply:
            return out
        for key in self.key_iterator(out):
            image = torch.as_tensor(out[key])
            shape = (-1,) + (1,) * (image.ndim - 1)
            factors = torch.as_tensor(1.0 + self.factors[: image.shape[0]], dtype=image.dtype).view(shape)
            offsets = torch.as_tensor(self.offsets[: image.shape[0]], dtype=image.dtype).view(shape)
            out[key] = torch.where(image != 0, image * factors + offsets, torch.zeros_like(image))
        return out


def deformation_transforms(images: Sequence[str], label: str, a: Augmentation) -> List[Transform]:
    """The affine and elastic deformations switched on, images and label together."""
    keys = [*images, label]
    modes = ["bilinear"] * len(images) + ["nearest"]
    transforms: List[Transform] = []
    if a.affine_probability > 0:
        transforms.append(
            RandAffined(
                keys,
                prob=a.affine_probability,
                rotate_range=[np.deg2rad(a.rotate_degrees)] * 3,
                scale_range=[a.scale_range] * 3,
                mode=modes,
                padding_mode="zeros",
            )
        )
    if a.elastic_probability > 0:
        transforms.append(
            Rand3DElasticd(
                keys,
                sigma_range=a.elastic_sigma,
                magnitude_range=a.elastic_magnitude,
                prob=a.elastic_probability,
                mode=modes,
                padding_mode="zeros",
            )
        )
    return transforms
