"""Bottom-up training loss: masked MSE on heatmaps and PAFs, summed over the network's stages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from posekit.schema import KeypointSchema


@dataclass(frozen=True)
class LossParts:
    """The total loss and its parts (detached floats, for logging)."""

    total: torch.Tensor
    heatmaps: tuple[float, ...]  # per stage
    pafs: tuple[float, ...]  # per stage


class BottomUpLoss(torch.nn.Module):
    """``sum_s w_s * (masked MSE(heatmaps_s) + masked MSE(pafs_s))``.

    Each squared error is multiplied by the loss mask (0 on crowds and unlabeled people) and, for
    keypoint heatmap channels, by the schema's ``joint_weights`` (background channel: 1); the sum
    is divided by the batch size (the Lightweight OpenPose normalisation, which keeps gradients of
    small, sparse targets from vanishing), then by 2.

    Args:
        schema: gives K, L and the per-keypoint weights.
        stage_weights: one weight per network stage (default 1 each).
    """

    def __init__(self, schema: KeypointSchema, stage_weights: Sequence[float] | None = None):
        super().__init__()
        weights = list(schema.joint_weights) + [1.0]
        self.register_buffer("channel_weights", torch.tensor(weights).view(1, -1, 1, 1))
        self.num_heatmaps = schema.num_keypoints + 1
        self.num_pafs = 2 * schema.num_limbs
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
        return LossParts(total, tuple(parts_h), tuple(parts_p))
