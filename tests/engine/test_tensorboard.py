"""TensorBoard logging of a training run: losses, learning rate, val AP and drawn predictions."""

from __future__ import annotations

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from posekit.config import load_config
from posekit.engine.trainer import Trainer


def test_scalars_and_images_are_logged(tmp_path):
    config = load_config(
        None,
        [
            "data.synth.num_images=4",
            "data.synth_val_images=2",
            "data.synth.image_size=[64,64]",
            "data.augment.input_size=[64,64]",
            "data.workers=0",
            "train.batch_size=2",
            "train.epochs=1",
            "train.log_images=2",
            "model.options.num_refinement_stages=1",
            f"out={tmp_path / 'run'}",
        ],
    )
    Trainer(config, progress=False).fit()
    events = EventAccumulator(str(tmp_path / "run" / "tb"), size_guidance={"images": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "val/AP", "val/AR"} <= scalars
    assert len(events.Scalars("train/loss")) == 2  # one per iteration
    stages = {f"train/stage{i}_{part}" for i in (0, 1) for part in ("heatmaps", "pafs")}
    assert stages <= scalars  # the initial and the refinement stage
    assert "train/stage2_pafs" not in scalars
    assert len(events.Tags()["images"]) == 2
