"""The training objectives: MST-KDNet co-training, the modality-dropout baseline, and MAG-MS.

Each returns an `ObjectiveResult`; a component switched off in `LossConfig` is never computed
and is absent from the result's terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from torch import Tensor, nn

from mstkd.losses.adversarial import discriminator_loss, generator_loss
from mstkd.losses.config import LossConfig
from mstkd.losses.logit_kd import probability_consistency_loss, rampup_weight, standardised_logit_kl
from mstkd.losses.segmentation import dice_ce_loss, soft_dice_loss
from mstkd.losses.self_distillation import feature_distillation_mse, self_distillation_kl
from mstkd.losses.style import content_loss, style_matching_loss
from mstkd.losses.transformer_kd import attention_extreme_value_loss, transformer_feature_loss
from mstkd.models.outputs import MAGMSOutput, MSTKDNetOutput

# The discriminator sees the fused style feature (the middle of Global_style), as in the reference.
DISCRIMINATED_STYLE = 1


@dataclass
class ObjectiveResult:
    """The differentiable total and weighted terms; each term unweighted and detached, with its weight."""

    total: Tensor
    terms: Dict[str, Tensor]
    weights: Dict[str, float]
    weighted: Dict[str, Tensor]


def _combine(weighted: List[Tuple[str, float, Tensor]]) -> ObjectiveResult:
    parts = {name: weight * value.float() for name, weight, value in weighted}
    return ObjectiveResult(
        total=sum(parts.values()),
        terms={name: value.detach() for name, _, value in weighted},
        weights={name: weight for name, weight, _ in weighted},
        weighted=parts,
    )


class MSTKDObjective:
    """MST-KDNet's total loss (METHOD.md 1.3): segmentation + MS-TKD + DMLD + content + GSME.

    Teacher and student are co-trained online, so every distillation term (MS-TKD, DMLD,
    content, GSME matching) sends gradients to both networks, as in the reference. The
    adversarial generator term reaches the student only; the discriminator is trained apart
    with `discriminator_objective` on detached features.
    """

    def __init__(self, config: LossConfig) -> None:
        self.config = config

    def __call__(
        self,
        teacher: MSTKDNetOutput,
        student: MSTKDNetOutput,
        target: Tensor,
        epoch: float,
        discriminator: Optional[nn.Module] = None,
    ) -> ObjectiveResult:
        """All enabled terms for one-hot `target` (B, 4, D, H, W) at a (fractional) `epoch`."""
        c = self.config
        teacher_dice = soft_dice_loss(teacher.probabilities, target)
        student_dice = soft_dice_loss(student.probabilities, target)
        weighted = [
            ("segmentation_teacher", c.teacher_segmentation_weight, teacher_dice),
            ("segmentation_student", c.student_segmentation_weight, student_dice),
        ]
        if c.mstkd_distillation:
            features = transformer_feature_loss(teacher.transformer_features, student.transformer_features)
            attention = attention_extreme_value_loss(teacher.attention_maps, student.attention_maps)
            weighted += [
                ("mstkd_features", c.mstkd_feature_weight, features),
                ("mstkd_attention", c.mstkd_attention_weight, attention),
            ]
        if c.dmld:
            ramp = rampup_weight(epoch, c.dmld_probability_weight, c.dmld_rampup_epochs)
            probability = probability_consistency_loss(teacher.probabilities, student.probabilities)
            kl = standardised_logit_kl(
                teacher.logits, student.logits, c.dmld_temperature, c.dmld_reference_standardisation
            )
            weighted += [("dmld_probability", ramp, probability), ("dmld_logit_kl", c.dmld_kl_weight, kl)]
        if c.content:
            weighted.append(("content", c.content_weight, content_loss(teacher.content, student.content)))
        if c.gsme:
            if discriminator is None:
                raise ValueError("MSTKDObjective needs the discriminator while loss.gsme is on.")
            matching = style_matching_loss(teacher.style_features, student.style_features)
            adversarial = generator_loss(discriminator, student.style_features[DISCRIMINATED_STYLE])
            weighted += [
                ("gsme_matching", c.gsme_matching_weight, matching),
                ("gsme_adversarial", c.gsme_adversarial_weight, adversarial),
            ]
        return _combine(weighted)


def discriminator_objective(
    discriminator: nn.Module, teacher: MSTKDNetOutput, student: MSTKDNetOutput
) -> Tensor:
    """The GSME discriminator's loss on detached style features (step it with its own optimiser)."""
    return discriminator_loss(
        discriminator,
        teacher.style_features[DISCRIMINATED_STYLE],
        student.style_features[DISCRIMINATED_STYLE],
    )


class BaselineObjective:
    """Modality-dropout baseline: the student's soft Dice alone, at weight 1.0.

    Weight 1.0 rather than MST-KDNet's 0.6: a constant factor on a lone term barely matters to
    Adam, and 1.0 makes the logged total the plain Dice loss.
    """

    def __call__(self, student: MSTKDNetOutput, target: Tensor) -> ObjectiveResult:
        """The student's segmentation loss against one-hot `target` (B, 4, D, H, W)."""
        return _combine([("segmentation_student", 1.0, soft_dice_loss(student.probabilities, target))])


class MAGMSObjective:
    """MAG-MS (METHOD.md 2): DiceCE of the fused and every sequence's output, + lambda KL + gamma MSE."""

    def __init__(self, config: LossConfig) -> None:
        self.config = config

    def __call__(self, output: MAGMSOutput, target: Tensor) -> ObjectiveResult:
        """All terms for a training forward pass (with per-sequence outputs) and one-hot `target`."""
        if not output.modality_logits:
            raise ValueError(
                "MAG-MS training needs the per-sequence outputs; call the network with per_modality=True."
            )
        c = self.config
        modalities = sum(dice_ce_loss(logits, target) for logits in output.modality_logits.values())
        kl = self_distillation_kl(
            output.logits, output.modality_logits, c.magms_temperature, c.magms_detach_fused_target
        )
        features = feature_distillation_mse(
            output.features, output.modality_features, c.magms_detach_fused_target
        )
        return _combine(
            [
                ("segmentation_fused", 1.0, dice_ce_loss(output.logits, target)),
                ("segmentation_modalities", 1.0, modalities),
                ("self_distillation_kl", c.magms_kl_weight, kl),
                ("feature_distillation", c.magms_feature_weight, features),
            ]
        )
