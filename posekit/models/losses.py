"""Training losses: ``LossParts`` (the total and its named parts per stage), and the bottom-up loss
(masked MSE on heatmaps and PAFs, summed over the network's stages)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from posekit.codecs.paf import PafCodec


@dataclass(frozen=True)
class LossParts:
    """The total loss and its named parts (detached floats, for logging).

    Attributes:
        total: the scalar to minimise (stage weights applied).
        parts: part name (an output of the codec layout, e.g. ``"heatmaps"``) -> its value per
            network stage, first stage first, unweighted.
    """

    total: torch.Tensor
    parts: Mapping[str, tuple[float, ...]]


class BottomUpLoss(torch.nn.Module):
    """``sum_s w_s * (masked MSE(heatmaps_s) + masked MSE(pafs_s))``.

    Each squared error is multiplied by the loss mask (0 on crowds and unlabeled people) and, for
    keypoint heatmap channels, by the schema's ``joint_weights`` (background channel: 1); the sum
    is divided by the batch size (the Lightweight OpenPose normalisation, which keeps gradients of
    small, sparse targets from vanishing), then by 2.

    Args:
        codec: the PAF codec (its schema's ``joint_weights`` weigh the keypoint channels).
        stage_weights: one weight per network stage (default 1 each).
    """

    def __init__(self, codec: PafCodec, stage_weights: Sequence[float] | None = None):
        super().__init__()
        background = codec.num_heatmaps - codec.schema.num_keypoints
        weights = list(codec.schema.joint_weights) + [1.0] * background
        self.register_buffer("channel_weights", torch.tensor(weights).view(1, -1, 1, 1))
        self.stage_weights = None if stage_weights is None else tuple(stage_weights)

    def forward(
        self,
        outputs: Sequence[tuple[torch.Tensor, torch.Tensor]],
        heatmaps: torch.Tensor,
        pafs: torch.Tensor,
        mask: torch.Tensor,
    ) -> LossParts:
        """Loss of every stage's ``(heatmaps (B, K+1, h, w), pafs (B, 2L, h, w))``.

        ``heatmaps``, ``pafs``: targets of the same shapes; ``mask``: (B, h, w) loss weights.
        """
        if self.stage_weights is not None and len(self.stage_weights) != len(outputs):
            raise ValueError(
                f"stage_loss_weights has {len(self.stage_weights)} values but the model has "
                f"{len(outputs)} stages"
            )
        weights = self.stage_weights or (1.0,) * len(outputs)
        m = mask.unsqueeze(1)
        batch = heatmaps.shape[0]
        total = heatmaps.new_zeros(())
        parts_h, parts_p = [], []
        for w, (pred_h, pred_p) in zip(weights, outputs, strict=True):
            if pred_h.shape != heatmaps.shape or pred_p.shape != pafs.shape:
                raise ValueError(
                    f"stage output shapes {tuple(pred_h.shape)}, {tuple(pred_p.shape)} do not "
                    f"match the targets {tuple(heatmaps.shape)}, {tuple(pafs.shape)}"
                )
            loss_h = ((pred_h - heatmaps) ** 2 * m * self.channel_weights).sum() / batch / 2
            loss_p = ((pred_p - pafs) ** 2 * m).sum() / batch / 2
            total = total + w * (loss_h + loss_p)
            parts_h.append(float(loss_h.detach()))
            parts_p.append(float(loss_p.detach()))
        return LossParts(total, {"heatmaps": tuple(parts_h), "pafs": tuple(parts_p)})
