"""Predictor: image-pixel coordinates through resize, padding, multi-scale and flip; input parity.

The network is replaced by a module that returns the codec's own targets of known keypoints,
placed in the input frame the Predictor built (found from the input size), so the poses it
returns can be compared with the keypoints in image pixels, or scored against the ground truth
of real photos.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from posekit import ConfigError, KeypointSchema, SchemaError
from posekit.codecs.paf import PafCodec
from posekit.data.coco import CocoKeypointDataset
from posekit.engine.evaluate import evaluate_coco
from posekit.geometry import transform_points
from posekit.inference import Predictor
from posekit.structures import InputSpec
from tests.checkpoint_files import noisy_lwop

SCHEMA = KeypointSchema.named("coco_person")
CODEC = PafCodec(SCHEMA)
HEIGHT = 192  # network input rows

# one upright figure in unit coordinates (x relative to its center, y from its top), COCO order
FIGURE = np.array(
    [[0.0, 0.10], [-0.03, 0.08], [0.03, 0.08], [-0.06, 0.10], [0.06, 0.10], [-0.10, 0.25],
     [0.10, 0.25], [-0.15, 0.40], [0.15, 0.40], [-0.17, 0.55], [0.17, 0.55], [-0.07, 0.55],
     [0.07, 0.55], [-0.08, 0.72], [0.08, 0.72], [-0.09, 0.90], [0.09, 0.90]]
)  # fmt: skip


def _people(width: int, height: int) -> np.ndarray:
    """(2, 17, 3) keypoints in image pixels: two figures side by side, v = 2."""
    out = np.full((2, len(FIGURE), 3), 2.0)
    for n, (cx, size) in enumerate([(0.3, 0.9), (0.72, 0.8)]):
        out[n, :, 0] = cx * width + FIGURE[:, 0] * size * 0.7 * width
        out[n, :, 1] = (1 - size) * height / 2 + FIGURE[:, 1] * size * height
    return out


class TargetsModel(nn.Module):
    """Returns ``CODEC.encode`` of ``kpts_img`` in the input frame of the Predictor's geometry.

    With ``predictor.flip`` the second half of the batch gets the targets of the mirrored input.
    """

    def __init__(self, kpts_img: np.ndarray, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.kpts_img, self.image_size = kpts_img, image_size
        self.stride = CODEC.stride
        self.predictor: Predictor | None = None
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        assert self.predictor is not None
        self.inputs.append(x)
        b, _, h, w = x.shape
        geos = [self.predictor.placement(self.image_size, s) for s in self.predictor.scales]
        geo = next((g for g in geos if g.padded == (w, h)), None)
        kpts_in = self.kpts_img.copy()
        if geo is None:  # an image of another size: no one in it
            kpts_in = kpts_in[:0]
        else:
            kpts_in[..., :2] = transform_points(kpts_in[..., :2], geo.matrix)
        plain = CODEC.encode(kpts_in, (w, h))
        mirrored = CODEC.encode(SCHEMA.flip_keypoints(kpts_in, w - 1), (w, h))
        n = b // 2 if self.predictor.flip else b
        targets = [plain] * n + [mirrored] * (b - n)
        heatmaps = torch.from_numpy(np.stack([t.heatmaps for t in targets]))
        pafs = torch.from_numpy(np.stack([t.pafs for t in targets]))
        return [(heatmaps, pafs)]


def _predictor(image_size: tuple[int, int], **kwargs) -> tuple[Predictor, np.ndarray]:
    kpts = _people(*image_size)
    model = TargetsModel(kpts, image_size)
    predictor = Predictor(model, SCHEMA, input_height=HEIGHT, **kwargs)
    predictor.runtime.model.predictor = predictor  # the Predictor runs a copy of the model
    return predictor, kpts


def _max_error(poses, kpts: np.ndarray) -> float:
    assert len(poses) == len(kpts)
    got = np.stack([p.keypoints for p in poses])
    got = got[np.argsort(got[:, 0, 0])]  # left figure first
    assert (got[..., 2] > 0.5).all()
    return float(np.abs(got[..., :2] - kpts[..., :2]).max())


# Tolerances in output cells (stride 8): single-scale decoding of the codec's own targets is exact
# up to float32 (the log-parabola fit is exact on Gaussians); the maps of other scales are warped
# bilinearly into the largest scale's frame, which moves a peak by up to ~0.06 cells.
@pytest.mark.parametrize("image_size", [(301, 203), (203, 301), (517, 389)])
@pytest.mark.parametrize(
    ("scales", "flip", "cells"),
    [((1.0,), False, 0.002), ((1.0,), True, 0.002), ((1.0, 0.75), False, 0.1),
     ((0.75, 1.0, 1.5), True, 0.1)],
)  # fmt: skip
def test_poses_come_back_in_image_pixels(image_size, scales, flip, cells):
    predictor, kpts = _predictor(image_size, scales=scales, flip=flip)
    image = np.zeros((image_size[1], image_size[0], 3), np.uint8)
    pixels_per_cell = CODEC.stride * image_size[1] / HEIGHT  # image pixels
    assert _max_error(predictor.predict(image), kpts) < cells * pixels_per_cell


def test_maps_frame_is_the_largest_scale():
    predictor, _ = _predictor((301, 203), scales=(0.5, 1.5))
    maps = predictor.maps(np.zeros((203, 301, 3), np.uint8))
    geo = predictor.placement((301, 203), 1.5)
    assert maps.heatmaps.shape == (SCHEMA.num_keypoints + 1, geo.padded[1] // 8, geo.padded[0] // 8)
    assert maps.pafs.shape == (2 * SCHEMA.num_limbs, *maps.heatmaps.shape[1:])


def test_predict_batch_shares_forward_passes_and_matches_predict():
    predictor, kpts = _predictor((301, 203), flip=True)
    model = predictor.runtime.model
    images = [np.full((203, 301, 3), v, np.uint8) for v in (0, 50, 100)]
    batch = predictor.predict_batch(images + [np.zeros((100, 80, 3), np.uint8)])
    assert [tuple(x.shape) for x in model.inputs] == [(6, 3, 192, 288), (2, 3, 192, 160)]
    for poses in batch[:3]:
        assert _max_error(poses, kpts) < 0.01
    assert batch[3] == []
    single = predictor.predict(images[0])
    assert all(
        np.array_equal(a.keypoints, b.keypoints) for a, b in zip(single, batch[0], strict=True)
    )


def test_placement_keeps_aspect_and_pads_to_the_stride():
    predictor, _ = _predictor((301, 203))
    geo = predictor.placement((301, 203), 0.5)
    assert geo.resized == (142, 96) and geo.padded == (144, 96)  # 301 * 96 / 203 = 142.3
    corners = np.array([[-0.5, -0.5], [300.5, 202.5]])  # image borders (pixel centers at integers)
    assert np.allclose(transform_points(corners, geo.matrix), [[-0.5, -0.5], [141.5, 95.5]])


@pytest.mark.parametrize("channels_last", [True, False])
def test_input_is_the_normalized_resized_image_zero_padded(channels_last):
    predictor, _ = _predictor((301, 203), channels_last=channels_last, flip=True)
    image = np.random.default_rng(0).integers(0, 256, (203, 301, 3), dtype=np.uint8)
    predictor.predict(image)
    x = predictor.runtime.model.inputs[0]
    assert x.is_contiguous(memory_format=torch.channels_last) == channels_last
    resized = cv2.resize(image, (285, 192), interpolation=cv2.INTER_AREA)
    expected = np.zeros((3, 192, 288), np.float32)
    expected[:, :, :285] = InputSpec().normalize(resized)
    assert np.array_equal(x[0].numpy(), expected)
    assert np.array_equal(x[1].numpy(), expected[:, :, ::-1])


def test_bad_arguments_and_images():
    model = TargetsModel(_people(64, 64), (64, 64))
    with pytest.raises(ConfigError, match=r"scales must be positive numbers, got \[1.0, 0.0\]"):
        Predictor(model, SCHEMA, scales=(1.0, 0.0))
    with pytest.raises(ConfigError, match="input_height must be >= the stride 8"):
        Predictor(model, SCHEMA, input_height=4)
    with pytest.raises(ConfigError, match="codec schema 'coco_person_neck' is not 'coco_person'"):
        Predictor(model, SCHEMA, codec=PafCodec(KeypointSchema.named("coco_person_neck")))
    lopsided = KeypointSchema("lopsided", ("left_a", "right_a", "b"), skeleton=(("left_a", "b"),))
    with pytest.raises(SchemaError, match="skeleton is not left/right symmetric"):
        Predictor(model, lopsided, flip=True)
    predictor, _ = _predictor((64, 64))
    with pytest.raises(
        ConfigError, match=r"expected an \(H, W, 3\) BGR image, got shape \(64, 64\)"
    ):
        predictor.predict(np.zeros((64, 64), np.uint8))
    with pytest.raises(ConfigError, match="expected a uint8 BGR image, got dtype float32"):
        predictor.predict(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ConfigError, match="precision must be one of"):
        Predictor(model, SCHEMA, precision="float16")


def test_bfloat16_forward_gives_float32_maps_close_to_float32():
    model = noisy_lwop("coco_person")
    image = np.random.default_rng(1).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    exact = Predictor(model, SCHEMA, input_height=64).maps(image)
    low = Predictor(model, SCHEMA, input_height=64, precision="bfloat16-forced").maps(image)
    assert low.heatmaps.dtype == low.pafs.dtype == np.float32
    scale = np.abs(exact.pafs).max()
    assert not np.array_equal(low.pafs, exact.pafs)  # it did run in another precision
    assert np.abs(low.pafs - exact.pafs).max() < 0.05 * scale  # bfloat16: 8-bit mantissa
    assert np.abs(low.heatmaps - exact.heatmaps).max() < 0.05 * np.abs(exact.heatmaps).max()


def test_bfloat16_falls_back_to_float32_where_it_is_not_native(monkeypatch, caplog):
    from posekit.inference.torch_runtime import TorchRuntime

    model = noisy_lwop("coco_person")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    with caplog.at_level("WARNING", logger="posekit.devices"):
        assert TorchRuntime(model, precision="bfloat16").autocast is None
    assert "no native bfloat16" in caplog.text and "running in float32" in caplog.text
    assert TorchRuntime(model, precision="bfloat16-forced").autocast is torch.bfloat16
    assert TorchRuntime(model).autocast is None
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert TorchRuntime(model, precision="bfloat16").autocast is torch.bfloat16


def test_folded_channels_last_copy_computes_the_same_maps():
    model = noisy_lwop("coco_person")
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    image = np.random.default_rng(0).integers(0, 256, (100, 150, 3), dtype=np.uint8)
    plain = Predictor(model, SCHEMA, input_height=64, channels_last=False, fold_batchnorm=False)
    fast = Predictor(model, SCHEMA, input_height=64)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.runtime.model.modules())
    expected, got = plain.maps(image), fast.maps(image)
    scale = np.abs(expected.pafs).max()
    assert np.allclose(got.heatmaps, expected.heatmaps, atol=1e-4 * scale)
    assert np.allclose(got.pafs, expected.pafs, atol=1e-4 * scale)
    # the model given is not touched by the fast Predictor (the plain one set eval mode)
    assert plain.runtime.model is model and fast.runtime.model is not model
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert model.model[0][0].weight.is_contiguous()


@pytest.mark.parametrize(("height", "flip"), [(256, False), (368, True)])
def test_a_perfect_network_scores_the_codec_ceiling_on_real_photos(coco_val, height, flip):
    """The whole chain (geometry, flip, decode to image pixels) on COCO-MINI val: fed the
    codec's targets of the ground truth, the Predictor scores the codec's round-trip ceiling
    (``perfect_map_poses`` gives 0.942 when the longer side is resized to 368 pixels)."""
    ann, root = coco_val
    records = CocoKeypointDataset(ann, root, schema=SCHEMA).records
    model = TargetsModel(np.zeros((0, SCHEMA.num_keypoints, 3)), (1, 1))
    predictor = Predictor(model, SCHEMA, input_height=height, flip=flip)
    predictor.runtime.model.predictor = predictor
    poses = {}
    for rec in records:
        predictor.runtime.model.kpts_img, predictor.runtime.model.image_size = (
            rec.keypoints,
            (rec.width, rec.height),
        )
        poses[rec.image_id] = predictor.predict(np.zeros((rec.height, rec.width, 3), np.uint8))
    assert evaluate_coco(ann, poses, SCHEMA)["AP"] > 0.92  # measured: 0.930 / 0.943 at 256 / 368
