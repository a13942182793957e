"""topdown_tiny: the head follows the codec (heatmaps, SimCC, regression, RLE), outputs of the
layout's sizes at the crop size, and the heatmap resolution follows ``deconvs``."""

from __future__ import annotations

import pytest
import torch

from posekit.codecs import build_codec
from posekit.errors import ConfigError
from posekit.models.zoo import build_model, default_codec
from posekit.schema import KeypointSchema

SCHEMA = KeypointSchema.named("coco_person")
K = SCHEMA.num_keypoints


@pytest.mark.parametrize(
    ("codec", "expected"),
    [
        ({"name": "udp", "input_size": [96, 128], "heatmap_size": [24, 32]}, [(K, 32, 24)]),
        ({"name": "simcc", "input_size": [96, 128]}, [(K, 192), (K, 256)]),
        ({"name": "regression", "input_size": [96, 128]}, [(K, 2)]),
        ({"name": "rle", "input_size": [96, 128]}, [(K, 2), (K, 2)]),
    ],
)
def test_the_head_makes_the_codecs_outputs(codec, expected):
    codec = build_codec(codec.pop("name"), SCHEMA, **codec)
    model = build_model("topdown_tiny", SCHEMA, codec=codec).eval()
    with torch.inference_mode():
        (outputs,) = model(torch.rand(3, 3, 128, 96))  # one stage
    assert [tuple(o.shape) for o in outputs] == [(3, *shape) for shape in expected]
    assert model.layout == codec.layout


@pytest.mark.parametrize(("deconvs", "stride", "widths"), [(0, 8, []), (1, 4, [64]),
                                                           (2, 2, [64, 32])])  # fmt: skip
def test_each_deconvolution_halves_the_stride_and_the_later_ones_the_width(deconvs, stride, widths):
    w, h = 96, 128
    codec = build_codec("udp", SCHEMA, input_size=[w, h], heatmap_size=[w // stride, h // stride])
    model = build_model("topdown_tiny", SCHEMA, codec=codec, deconvs=deconvs).eval()
    assert model.stride == stride
    deconv = [m for m in model.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.out_channels for m in deconv] == widths
    with torch.inference_mode():
        ((heatmaps,),) = model(torch.rand(1, 3, h, w))
    assert heatmaps.shape == (1, K, h // stride, w // stride)


@pytest.mark.parametrize("name", ["simcc", "rle", "regression", "msra"])
def test_another_codec_keeps_the_models_crop_size(name):
    """``codec.name=simcc`` on topdown_tiny: a SimCC codec of its 96 x 128 crops, not of the
    codec's own 192 x 256 default."""
    codec = default_codec("topdown_tiny", SCHEMA, {"name": name})
    assert codec.name == name and tuple(codec.input_size) == (96, 128)
    assert tuple(default_codec("hrnet_w32", SCHEMA, {"name": name}).input_size) == (192, 256)
    model = build_model("topdown_tiny", SCHEMA, codec=codec)
    assert model.layout == codec.layout


def test_the_skip_head_joins_the_stride_4_features():
    codec = default_codec("topdown_tiny", SCHEMA, {"heatmap_size": [24, 32], "sigma": 1.5})
    model = build_model("topdown_tiny", SCHEMA, codec=codec, skip=True).eval()
    assert model.stride == 4 and model.options["skip"] is True
    x = torch.rand(2, 3, 128, 96)
    with torch.inference_mode():
        ((heatmaps,),) = model(x)
        coarse, fine = model.backbone(x)
    assert heatmaps.shape == (2, K, 32, 24) and fine.shape[2:] == (32, 24)
    assert coarse.shape[2:] == (16, 12)
    again = build_model("topdown_tiny", SCHEMA, codec=codec, **model.options)
    assert again.state_dict().keys() == model.state_dict().keys()
    with pytest.raises(ConfigError, match="skip: needs a heatmap codec and deconvs=1"):
        build_model("topdown_tiny", SCHEMA, codec=build_codec("simcc", SCHEMA), skip=True)


def test_two_skip_levels_make_stride_2_maps_and_keep_the_first_levels_keys():
    codec = default_codec("topdown_tiny", SCHEMA, {"heatmap_size": [48, 64], "sigma": 3.0})
    model = build_model("topdown_tiny", SCHEMA, codec=codec, skip=2).eval()
    quarter = default_codec("topdown_tiny", SCHEMA, {"heatmap_size": [24, 32]})
    one = build_model("topdown_tiny", SCHEMA, codec=quarter, skip=1)
    assert model.stride == 2
    x = torch.rand(2, 3, 128, 96)
    with torch.inference_mode():
        ((heatmaps,),) = model(x)
        coarse, fine, half = model.backbone(x)
    assert heatmaps.shape == (2, K, 64, 48) and half.shape[1:] == (16, 64, 48)
    assert fine.shape[2:] == (32, 24) and coarse.shape[2:] == (16, 12)
    # level 1 is the one-level head's (a one-level checkpoint starts its trunk and first level)
    added = set(model.state_dict()) - set(one.state_dict())
    assert added and all(k.split(".")[1] in {"deconv2", "lateral2", "fuse2"} for k in added)
    shared = set(model.state_dict()) & set(one.state_dict())
    assert all(model.state_dict()[k].shape == one.state_dict()[k].shape
               for k in shared if "final_layer" not in k)  # fmt: skip


@pytest.mark.parametrize("skip", [3, -1, "2"])
def test_a_bad_skip_value_is_named(skip):
    with pytest.raises(ConfigError, match="skip: false, true"):
        build_model("topdown_tiny", SCHEMA, skip=skip)


def test_a_codec_of_the_wrong_map_size_names_the_size_to_set():
    with pytest.raises(ConfigError, match=r"codec.heatmap_size=\[48,64\]"):
        build_model("topdown_tiny", SCHEMA, codec=default_codec("topdown_tiny", SCHEMA), skip=2)


@pytest.mark.parametrize(
    ("overrides", "skip", "stride"),
    [
        ({}, False, 4),  # the default codec: 24 x 32 maps from the 96 x 128 crop
        ({"heatmap_size": [48, 64], "sigma": 2.0}, 2, 2),
        ({"name": "simcc"}, False, 1),
        ({"name": "rle"}, False, 1),
    ],
)
def test_the_skip_head_follows_the_codec_unless_set(overrides, skip, stride):
    codec = default_codec("topdown_tiny", SCHEMA, overrides)
    model = build_model("topdown_tiny", SCHEMA, codec=codec)
    assert model.options["skip"] == skip and model.stride == stride == codec.stride
    # the resolved value rebuilds the same network (a checkpoint keeps the options)
    again = build_model("topdown_tiny", SCHEMA, codec=codec, **model.options)
    assert again.state_dict().keys() == model.state_dict().keys()


def test_an_explicit_skip_overrides_the_codec_and_a_mismatch_is_named():
    half = default_codec("topdown_tiny", SCHEMA, {"heatmap_size": [48, 64]})
    assert build_model("topdown_tiny", SCHEMA, codec=half).stride == 2
    assert build_model("topdown_tiny", SCHEMA, skip=True).options["skip"] is True
    with pytest.raises(ConfigError, match=r"codec.heatmap_size=\[24,32\]"):
        build_model("topdown_tiny", SCHEMA, codec=half, skip=True)
