"""Checkpoint files for inference tests: posekit checkpoints and the official Lightweight OpenPose
layout (from ../shared/weights/lwop_checkpoint_keys.tsv, see tests/models/test_zoo.py), written
with random weights. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from posekit.codecs.paf import PafCodec
from posekit.engine.checkpoint import save_checkpoint
from posekit.models import zoo
from posekit.models.bottomup import LightweightOpenPose
from posekit.models.record import ModelRecord
from posekit.schema import KeypointSchema
from posekit.structures import InputSpec
from tests.models.test_zoo import _official_state, _training_checkpoint


def noisy_lwop(schema: KeypointSchema | str, seed: int = 0) -> LightweightOpenPose:
    """Lightweight OpenPose whose conv weights are drawn with He (fan-in) scaling.

    The training initialisation makes an untrained network's maps ~1e-14 (no peak at all), so
    decoding would never run; these weights give maps with peaks everywhere, i.e. many poses.
    """
    model = LightweightOpenPose(KeypointSchema.load(schema), num_refinement_stages=1)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=gen)
    return model.eval()


def write_posekit_checkpoint(path: Path, model: LightweightOpenPose, input_height: int) -> Path:
    """A posekit checkpoint of ``model`` with the record ``engine.trainer`` writes."""
    codec = PafCodec(model.schema)
    record = ModelRecord(
        "bottomup", "lwop_mobilenet", model.schema, codec, InputSpec(height=input_height),
        model.options,
    )  # fmt: skip
    return save_checkpoint({**record.to_dict(), "model": model.state_dict()}, path)


def write_topdown_checkpoint(path: Path, schema: KeypointSchema | str = "coco_person") -> Path:
    """A posekit checkpoint of an untrained ``topdown_tiny`` (its zoo codec and input spec)."""
    schema = KeypointSchema.load(schema)
    codec = zoo.default_codec("topdown_tiny", schema)
    model = zoo.build_model("topdown_tiny", codec=codec)
    record = ModelRecord("topdown", "topdown_tiny", schema, codec,
                         zoo.MODELS["topdown_tiny"].input, model.options)  # fmt: skip
    return save_checkpoint({**record.to_dict(), "model": model.state_dict()}, path)


def write_official_checkpoint(path: Path, *, heads: tuple[int, int] | None = None) -> Path:
    """The published file's layout (every key, shape and dtype), random weights.

    The N(0, 1) values are rescaled (He scaling of convs, BatchNorm scales near 1, positive
    variances, small biases) so that the network computes finite maps with peaks.
    ``heads``: (heatmap, PAF) channel counts of the output layers, to fake a checkpoint trained
    for another schema (the published one has (19, 38)).
    """
    state = _official_state()
    for key, value in state.items():
        if not value.is_floating_point():
            continue
        if value.dim() == 4:  # conv weight (out, in, kh, kw)
            state[key] = value * (2.0 / value[0].numel()) ** 0.5
        elif key.endswith("running_var"):
            state[key] = value.abs() + 0.5
        elif key.endswith(".weight") and key[: -len("weight")] + "running_var" in state:
            state[key] = 1.0 + 0.1 * value  # BatchNorm scale
        else:  # biases, running means
            state[key] = 0.1 * value
    if heads is not None:
        for key in [k for k in state if k.endswith(("heatmaps.1.0.weight", "heatmaps.1.0.bias"))]:
            state[key] = state[key][: heads[0]]
        for key in [k for k in state if k.endswith(("pafs.1.0.weight", "pafs.1.0.bias"))]:
            state[key] = state[key][: heads[1]]
    torch.save(_training_checkpoint(state), path)
    return path
