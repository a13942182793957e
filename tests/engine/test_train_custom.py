"""Training on a real custom schema (AP-10K animals) straight from its COCO JSON, no code edits."""

from __future__ import annotations

import json

from posekit.config import load_config
from posekit.engine.checkpoint import load_checkpoint
from posekit.engine.trainer import Trainer
from posekit.schema import KeypointSchema


def test_ap10k_trains_end_to_end(shared_data, tmp_path):
    ann = shared_data / "custom/ap10k/test_ap10k.json"
    root = shared_data / "custom/ap10k"
    config = load_config(
        None,
        [
            f"data.train_ann={ann}",
            f"data.train_images={root}",
            f"data.val_ann={ann}",
            f"data.val_images={root}",
            "data.augment.input_size=[64,64]",
            "data.workers=0",
            "train.batch_size=2",
            "train.epochs=1",
            f"out={tmp_path / 'run'}",
        ],
    )
    result = Trainer(config, progress=False).fit()
    assert result.iterations == 1 and 0.0 <= result.best_ap <= 1.0
    state = load_checkpoint(tmp_path / "run" / "best.pt")
    schema = KeypointSchema.from_dict(state["schema"])
    category = json.loads(ann.read_text())["categories"][0]
    assert schema.keypoints == tuple(category["keypoints"])
    assert schema.num_limbs == len(category["skeleton"])
    heads = [v for k, v in state["model"].items() if k.endswith("heatmaps.1.0.weight")]
    assert heads and all(h.shape[0] == 18 for h in heads)  # K + 1 channels from the JSON


def test_fine_tune_from_official_weights_rebuilds_the_heads(shared_data, tmp_path, caplog):
    import logging

    import torch

    from tests.models.test_zoo import _official_state, _training_checkpoint

    official = _official_state(seed=1)
    path = tmp_path / "checkpoint_iter_370000.pth"
    torch.save(_training_checkpoint(official), path)
    ann = shared_data / "custom/ap10k/test_ap10k.json"
    config = load_config(
        None,
        [
            f"data.train_ann={ann}",
            f"data.train_images={shared_data / 'custom/ap10k'}",
            f"model.pretrained={path}",
            "data.augment.input_size=[64,64]",
            "data.workers=0",
            "train.batch_size=2",
            "train.epochs=1",
            f"out={tmp_path / 'run'}",
        ],
    )
    with caplog.at_level(logging.INFO):
        trainer = Trainer(config, progress=False)
    state = trainer.model.state_dict()
    trunk = [k for k in official if k.startswith(("model.", "cpm."))]
    assert trunk and all(torch.equal(state[k], official[k]) for k in trunk)
    head = "initial_stage.heatmaps.1.0.weight"
    assert official[head].shape[0] == 19 and state[head].shape[0] == 18  # rebuilt for AP-10K
    assert "fine-tuning" in caplog.text and "heatmaps" in caplog.text
