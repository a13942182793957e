"""BottomUpLoss: value against a direct formula, masking, weights, gradients."""

from __future__ import annotations

import pytest
import torch

from posekit.codecs.paf import PafCodec
from posekit.errors import ConfigError
from posekit.models.losses import BottomUpLoss
from posekit.schema import KeypointSchema


def _data(schema, b=2, h=6, w=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    k, p = schema.num_keypoints + 1, 2 * schema.num_limbs
    return (
        torch.rand(b, k, h, w, generator=g),
        torch.rand(b, p, h, w, generator=g),
        (torch.rand(b, h, w, generator=g) > 0.3).float(),
    )


def test_matches_the_formula_and_ignores_masked_pixels():
    schema = KeypointSchema(
        name="t",
        keypoints=["a", "b", "c"],
        skeleton=[["a", "b"], ["b", "c"]],
        sigmas=[0.05] * 3,
        joint_weights=[1.0, 2.0, 0.5],
    )
    hm, pf, mask = _data(schema)
    outputs = [_data(schema, seed=1)[:2], _data(schema, seed=2)[:2]]
    loss = BottomUpLoss(PafCodec(schema), stage_weights=[0.5, 1.0])(outputs, hm, pf, mask)
    cw = torch.tensor([1.0, 2.0, 0.5, 1.0]).view(1, -1, 1, 1)
    expected = 0.0
    for sw, (oh, op) in zip([0.5, 1.0], outputs, strict=True):
        expected += (
            sw
            * (((oh - hm) ** 2 * mask[:, None] * cw).sum() + ((op - pf) ** 2 * mask[:, None]).sum())
            / 2
            / 2
        )
    torch.testing.assert_close(loss.total, expected)
    assert len(loss.parts["heatmaps"]) == 2 and loss.parts["pafs"][0] > 0
    # changing predictions under the mask's zeros does not change the loss
    oh, op = outputs[1]
    oh2 = oh + (1 - mask[:, None]) * 100
    again = BottomUpLoss(PafCodec(schema), stage_weights=[0.5, 1.0])(
        [outputs[0], (oh2, op)], hm, pf, mask
    )
    torch.testing.assert_close(again.total, loss.total)


def test_perfect_prediction_is_zero_and_gradients_flow():
    schema = KeypointSchema.named("coco_person_neck")
    hm, pf, mask = _data(schema)
    pred_h = hm.clone().requires_grad_(True)
    loss = BottomUpLoss(PafCodec(schema))([(pred_h, pf.clone())], hm, pf, mask)
    assert float(loss.total.detach()) == 0.0
    BottomUpLoss(PafCodec(schema))([(pred_h + 1, pf)], hm, pf, mask).total.backward()
    assert pred_h.grad is not None and pred_h.grad.abs().sum() > 0


def test_shape_and_stage_count_errors():
    schema = KeypointSchema.named("coco_person")
    hm, pf, mask = _data(schema)
    with pytest.raises(ValueError, match="do not match the targets"):
        BottomUpLoss(PafCodec(schema))([(hm[:, :-1], pf)], hm, pf, mask)
    with pytest.raises(ValueError, match="stage_loss_weights has 2 values"):
        BottomUpLoss(PafCodec(schema), [1.0, 1.0])([(hm, pf)], hm, pf, mask)


def test_foreground_weights_weigh_heatmap_peaks_and_limbs():
    """fg_weights (a, b): a keypoint heatmap cell's error weighs 1 + a * target, the background
    channel's is unweighted, a PAF cell's weighs 1 + b where the target is not zero."""
    schema = KeypointSchema(name="t", keypoints=["a", "b"], skeleton=[["a", "b"]],
                            sigmas=[0.05] * 2, joint_weights=[1.0, 2.0])  # fmt: skip
    hm, pf, mask = _data(schema)
    pf[:, :, :2] = 0.0  # off the limb
    pred = _data(schema, seed=3)[:2]
    loss = BottomUpLoss(PafCodec(schema), fg_weights=(10.0, 4.0))([pred], hm, pf, mask)
    kp = torch.tensor([1.0, 1.0, 0.0]).view(1, -1, 1, 1)
    w_h = mask[:, None] * torch.tensor([1.0, 2.0, 1.0]).view(1, -1, 1, 1) * (1 + 10 * hm * kp)
    w_p = mask[:, None] * (1 + 4 * (pf != 0).float())
    expected = (((pred[0] - hm) ** 2 * w_h).sum() + ((pred[1] - pf) ** 2 * w_p).sum()) / 2 / 2
    torch.testing.assert_close(loss.total, expected)
    plain = BottomUpLoss(PafCodec(schema))([pred], hm, pf, mask).total
    assert float(loss.total) > 2 * float(plain)
    for bad in [(1.0,), (-1.0, 0.0), (float("nan"), 1.0)]:
        with pytest.raises(ConfigError, match="fg_weights must be two numbers >= 0"):
            BottomUpLoss(PafCodec(schema), fg_weights=bad)
