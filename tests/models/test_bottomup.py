"""Bottom-up networks: output contract (stages, K+1 / 2L channels from the schema, stride 8)."""

from __future__ import annotations

import json

import pytest
import torch

from posekit.codecs.base import OutputLayout, OutputSpec
from posekit.models.backbones import (
    MobileNetV1Trunk,
    VGG19Trunk,
    vgg19_trunk_state_from_torchvision,
)
from posekit.models.bottomup import STRIDE, LightweightOpenPose, OpenPoseVGG19, PafTiny
from posekit.models.heads.paf import OutputConv
from posekit.schema import KeypointSchema

AP10K = "../shared/data/custom/ap10k/test_ap10k.json"  # relative to the repo root (tests run there)


def _schema(name: str) -> KeypointSchema:
    if name == "ap10k":
        with open(AP10K) as f:
            return KeypointSchema.from_coco(json.load(f)["categories"][0])
    return KeypointSchema.named(name)


SCHEMAS = ("coco_person", "coco_person_neck", "openpose18", "ap10k")
MODELS = (
    (LightweightOpenPose, 1),
    (LightweightOpenPose, 2),
    (OpenPoseVGG19, 1),  # 5 in the CMU network; one keeps the test fast (see test_vgg19_default)
    (PafTiny, 0),
    (PafTiny, 2),
)


@pytest.mark.parametrize("schema_name", SCHEMAS)
@pytest.mark.parametrize(("cls", "num_refinement_stages"), MODELS)
def test_forward_shapes_follow_schema(schema_name, cls, num_refinement_stages):
    torch.manual_seed(0)
    schema = _schema(schema_name)
    model = cls(schema, num_refinement_stages=num_refinement_stages).eval()
    k, num_limbs = schema.num_keypoints, schema.num_limbs
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, 64, 96))
    assert len(outputs) == 1 + num_refinement_stages
    for heatmaps, pafs in outputs:
        assert heatmaps.shape == (2, k + 1, 64 // STRIDE, 96 // STRIDE)
        assert pafs.shape == (2, 2 * num_limbs, 64 // STRIDE, 96 // STRIDE)
        assert heatmaps.dtype == pafs.dtype == torch.float32
        assert torch.isfinite(heatmaps).all() and torch.isfinite(pafs).all()
    assert model.schema is schema
    assert (model.num_heatmaps, model.num_pafs) == (k + 1, 2 * num_limbs)
    assert model.num_refinement_stages == num_refinement_stages
    assert model.stride == STRIDE


def test_custom_schema_counts():
    schema = _schema("ap10k")  # an animal schema: K and L come from the COCO category
    assert (schema.num_keypoints, schema.num_limbs) == (17, 17)
    model = LightweightOpenPose(schema)
    # refinement input = concat(features 128, heatmaps K+1, pafs 2L)
    first = model.refinement_stages[0].trunk[0].initial[0]
    assert first.in_channels == 128 + 18 + 34


def test_paf_tiny_is_small_and_every_stage_learns():
    torch.manual_seed(0)
    schema = KeypointSchema.named("coco_person")
    model = PafTiny(schema)
    assert model.num_refinement_stages == 0
    assert 1.4e6 < sum(p.numel() for p in model.parameters()) < 1.9e6
    two = PafTiny(schema, num_refinement_stages=1)
    # refinement input = concat(features 128, heatmaps K+1, pafs 2L)
    assert two.refinement_stages[0].trunk[0][0].in_channels == 128 + 18 + 38
    outputs = two(torch.randn(2, 3, 32, 32))
    sum(h.square().sum() + p.square().sum() for h, p in outputs).backward()
    assert [n for n, p in two.named_parameters() if p.grad is None or not p.grad.any()] == []
    with pytest.raises(ValueError, match="width must be an even int"):
        PafTiny(schema, width=7)


def test_vgg19_default_has_five_refinement_stages():
    schema = KeypointSchema.named("coco_person")
    model = OpenPoseVGG19(schema).eval()
    assert model.num_refinement_stages == 5
    with torch.no_grad():
        outputs = model(torch.zeros(1, 3, 32, 40))
    assert [tuple(h.shape) for h, _ in outputs] == [(1, 18, 4, 5)] * 6
    assert [tuple(p.shape) for _, p in outputs] == [(1, 38, 4, 5)] * 6
    # refinement stages: five 7x7 convs then 1x1 128 and 1x1 out per branch
    branch = model.refinement_stages[0].pafs
    kernels = [m.kernel_size for m in branch if isinstance(m, torch.nn.Conv2d)]
    assert kernels == [(7, 7)] * 5 + [(1, 1), (1, 1)]
    # published OpenPose (COCO, 6 stages) has about 52.3M parameters
    num_params = sum(p.numel() for p in model.parameters())
    assert 52.0e6 < num_params < 52.6e6


def test_stride_8_for_other_sizes():
    model = LightweightOpenPose(KeypointSchema.named("coco_person"), num_refinement_stages=0)
    with torch.no_grad():
        outputs = model(torch.zeros(1, 3, 128, 48))
    assert len(outputs) == 1
    assert outputs[0][0].shape[-2:] == (16, 6)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((1, 3, 60, 96), "multiples of 8"),
        ((1, 3, 64, 90), "multiples of 8"),
        ((1, 1, 64, 96), r"expected input \(B, 3, H, W\)"),
        ((3, 64, 96), r"expected input \(B, 3, H, W\)"),
    ],
)
def test_bad_input_shape(shape, message):
    model = LightweightOpenPose(KeypointSchema.named("coco_person"), num_refinement_stages=0)
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(shape))


@pytest.mark.parametrize("bad", [-1, 1.5, "2"])
def test_bad_stage_count(bad):
    with pytest.raises(ValueError, match="num_refinement_stages must be an int >= 0"):
        LightweightOpenPose(KeypointSchema.named("coco_person"), num_refinement_stages=bad)


def test_every_parameter_gets_a_gradient():
    """All stages are wired into the output list (intermediate supervision reaches the trunk)."""
    torch.manual_seed(0)
    model = LightweightOpenPose(KeypointSchema.named("coco_person"), num_refinement_stages=2)
    outputs = model(torch.randn(2, 3, 32, 32))
    sum(h.square().sum() + p.square().sum() for h, p in outputs).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert no_grad == []


def test_initialisation():
    torch.manual_seed(0)
    model = LightweightOpenPose(KeypointSchema.named("openpose18"))
    heads = [m for m in model.modules() if isinstance(m, OutputConv)]
    assert sorted(m.kind for m in heads) == ["heatmaps", "heatmaps", "pafs", "pafs"]
    for head in heads:
        assert head.kernel_size == (1, 1)
        assert abs(head.weight.std().item() - 0.01) < 0.002
        assert not head.bias.any()
    # untrained maps start small: heads have std 0.01 on ReLU features
    model.eval()
    with torch.no_grad():
        heatmaps, pafs = model(torch.rand(1, 3, 64, 64) - 0.5)[-1]
    assert heatmaps.abs().max() < 1.0 and pafs.abs().max() < 1.0
    with pytest.raises(ValueError, match="kind must name an output"):
        OutputConv(8, 4, kind="")
    other = OutputLayout((OutputSpec("heatmaps", 18, "heatmap", "K+1"),))
    with pytest.raises(ValueError, match=r"a PAF network makes \(heatmaps, pafs\)"):
        LightweightOpenPose(KeypointSchema.named("coco_person"), layout=other)


def test_trunks_reach_stride_8():
    x = torch.zeros(1, 3, 64, 96)
    with torch.no_grad():
        assert MobileNetV1Trunk().eval()(x).shape == (1, 512, 8, 12)
        assert VGG19Trunk()(x).shape == (1, 512, 8, 12)


def test_vgg19_trunk_loads_torchvision_layout():
    # torchvision vgg19().features: conv indices and shapes (an independent listing of VGG19 "E")
    convs = {
        0: (64, 3),
        2: (64, 64),
        5: (128, 64),
        7: (128, 128),
        10: (256, 128),
        12: (256, 256),
        14: (256, 256),
        16: (256, 256),
        19: (512, 256),
        21: (512, 512),
        23: (512, 512),
        25: (512, 512),
        28: (512, 512),
    }
    torchvision_state = {}
    for index, (out_ch, in_ch) in convs.items():
        torchvision_state[f"features.{index}.weight"] = torch.randn(out_ch, in_ch, 3, 3)
        torchvision_state[f"features.{index}.bias"] = torch.randn(out_ch)
    torchvision_state["classifier.0.weight"] = torch.randn(4, 8)
    trunk = VGG19Trunk()
    trunk.load_state_dict(vgg19_trunk_state_from_torchvision(torchvision_state))  # strict
    assert torch.equal(trunk[21].weight, torchvision_state["features.21.weight"])
    assert len(trunk.state_dict()) == 20  # conv1_1 ... conv4_2: 10 weights + 10 biases
