"""Input batches from an InputSpec: resize, channel order, per-channel mean / std, padding, flip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from posekit.errors import ConfigError
from posekit.geometry import place_at_height
from posekit.inference.preprocess import check_image, crop_batch, image_batch
from posekit.structures import InputSpec

IMAGENET = InputSpec("RGB", (123.675, 116.28, 103.53), (58.395, 57.12, 57.375), pad_value=-1.5)


@pytest.mark.parametrize("spec", [InputSpec(), IMAGENET], ids=["lwop", "imagenet"])
def test_batch_is_the_normalized_resized_image_then_padding(spec):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (203, 301, 3), dtype=np.uint8) for _ in range(2)]
    place = place_at_height((301, 203), 96, 8)
    (w, h), (pw, ph) = place.resized, place.padded
    batch = image_batch(images, place, spec, flip=True)
    assert batch.shape == (4, ph, pw, 3) and batch.dtype == np.float32
    for i, image in enumerate(images):
        resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA).astype(np.float64)
        rgb = resized[..., ::-1] if spec.color_order == "RGB" else resized
        expected = (rgb - np.array(spec.mean)) / np.array(spec.std)
        np.testing.assert_allclose(batch[i, :h, :w], expected, atol=1e-5)
        assert (batch[i, :, w:] == spec.pad_value).all() and (batch[i, h:] == spec.pad_value).all()
        np.testing.assert_array_equal(batch[2 + i], batch[i, :, ::-1])  # the mirrored inputs follow
    np.testing.assert_array_equal(  # InputSpec.normalize is the same normalisation, (3, H, W)
        spec.normalize(cv2.resize(images[0], (w, h), interpolation=cv2.INTER_AREA)),
        batch[0, :h, :w].transpose(2, 0, 1),
    )


@pytest.mark.parametrize("spec", [InputSpec(), IMAGENET], ids=["lwop", "imagenet"])
def test_crops_are_the_warped_normalized_image_mirrors_after(spec):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (150, 220, 3), dtype=np.uint8)
    spec = InputSpec(spec.color_order, spec.mean, spec.std, spec.pad_value, 1, 40, 32)
    matrices = np.array([[[0.5, 0.0, -10.0], [0.0, 0.5, -3.0]],
                         [[1.2, 0.1, -150.0], [-0.1, 1.2, -60.0]],
                         [[1.0, 0.0, -200.0], [0.0, 1.0, -130.0]]])  # fmt: skip
    batch = crop_batch(image, matrices, spec, flip=True)
    assert batch.shape == (6, 40, 32, 3) and batch.dtype == np.float32
    for i, matrix in enumerate(matrices):
        warped = cv2.warpAffine(image, matrix, (32, 40), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE).astype(np.float64)  # fmt: skip
        rgb = warped[..., ::-1] if spec.color_order == "RGB" else warped
        expected = (rgb - np.array(spec.mean)) / np.array(spec.std)
        inside = cv2.warpAffine(np.ones((150, 220), np.uint8), matrix, (32, 40),
                                flags=cv2.INTER_NEAREST) > 0  # fmt: skip
        inside = cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        np.testing.assert_allclose(batch[i][inside], expected[inside], atol=1e-5)
        np.testing.assert_array_equal(batch[3 + i], batch[i][:, ::-1])
    outside = batch[2][21:, 21:]  # the last crop's corner lies beyond the image: the pad value
    np.testing.assert_allclose(outside, spec.pad_value, atol=0.01)


def test_bad_images_are_refused():
    with pytest.raises(ConfigError, match=r"expected an \(H, W, 3\) BGR image, got shape \(4, 4\)"):
        check_image(np.zeros((4, 4), np.uint8))
    with pytest.raises(ConfigError, match="uint8"):
        check_image(np.zeros((4, 4, 3), np.float32))


def test_input_spec_round_trip_and_errors():
    assert InputSpec.from_dict(IMAGENET.to_dict()) == IMAGENET
    with pytest.raises(ConfigError, match="color_order must be one of"):
        InputSpec(color_order="BRG")
    with pytest.raises(ConfigError, match="std > 0"):
        InputSpec(std=(1.0, 0.0, 1.0))
    with pytest.raises(ConfigError, match="height must be >= the size divisor 32"):
        InputSpec(size_divisor=32, height=16)
    with pytest.raises(ConfigError, match=r"unknown keys \['mean_rgb'\]"):
        InputSpec.from_dict({"mean_rgb": [1, 2, 3]})
