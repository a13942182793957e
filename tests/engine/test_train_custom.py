"""Training on a real custom schema (AP-10K animals) straight from its COCO JSON, no code edits."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from posekit.config import load_config
from posekit.engine.trainer import Trainer
from posekit.models.loading import load_model
from posekit.models.record import load_checkpoint
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
    model = load_model(tmp_path / "run" / "best.pt").model
    with torch.no_grad():
        heatmaps, pafs = model(torch.zeros(1, 3, 64, 64))[-1]
    # K + 1 and 2L channels from the JSON
    assert heatmaps.shape[1] == len(category["keypoints"]) + 1 == 18
    assert pafs.shape[1] == 2 * len(category["skeleton"])


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
            "model.name=lwop_mobilenet",
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


def test_shipped_lwop_config_fine_tunes_on_ap10k(shared_data, tmp_path):
    """configs/lwop_mobilenet.yaml as a user runs it, with the published file given locally."""
    from tests.checkpoint_files import write_official_checkpoint

    path = write_official_checkpoint(tmp_path / "checkpoint_iter_370000.pth")  # finite maps
    official = torch.load(path, weights_only=True)["state_dict"]
    ann = shared_data / "custom/ap10k/test_ap10k.json"
    config_file = Path(__file__).resolve().parents[2] / "configs" / "lwop_mobilenet.yaml"
    config = load_config(
        config_file,
        [
            f"data.train_ann={ann}",
            f"data.train_images={shared_data / 'custom/ap10k'}",
            f"model.pretrained={path}",
            "data.augment.input_size=[64,64]",  # small and quick; the file says 368
            "data.workers=0",
            "train.batch_size=2",
            "train.epochs=1",
            f"out={tmp_path / 'run'}",
        ],
    )
    assert config.train.frozen_backbone_epochs > 0  # the trunk is kept fixed at first
    trainer = Trainer(config, progress=False)
    state = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert torch.equal(state["model.0.0.weight"], official["model.0.0.weight"])
    result = trainer.fit()
    assert result.history[0]["loss"] > 0  # one real step (a non-finite loss is skipped, 0)
    after = trainer.model.state_dict()
    assert torch.equal(after["model.0.0.weight"], official["model.0.0.weight"])  # frozen
    head = "initial_stage.heatmaps.1.0.weight"  # rebuilt for 17 keypoints, and trained
    assert after[head].shape[0] == 18 and not torch.equal(after[head], state[head])


def test_a_schema_without_skeleton_trains_bottom_up_with_a_learned_one(shared_data, tmp_path):
    # Horse-10's JSON names 22 keypoints and no limbs: the run learns a skeleton from the data,
    # writes it beside the config, trains PAFs for it and keeps it in the checkpoint
    ann = shared_data / "custom/horse10/test_horse10.json"
    root = shared_data / "custom/horse10"
    config = load_config(
        None,
        [f"data.train_ann={ann}", f"data.train_images={root}", f"data.val_ann={ann}",
         f"data.val_images={root}", "data.augment.input_size=[64,64]", "data.workers=0",
         "train.batch_size=2", "train.epochs=1", f"out={tmp_path / 'run'}"],
    )  # fmt: skip
    result = Trainer(config, progress=False).fit()
    assert result.iterations == 2
    written = KeypointSchema.load(tmp_path / "run" / "schema.yaml")
    stored = KeypointSchema.from_dict(load_checkpoint(tmp_path / "run" / "best.pt")["schema"])
    assert stored == written and stored.num_keypoints == 22
    assert 21 <= stored.num_limbs <= 24  # a spanning tree of 22 keypoints, mirror pairs whole
    assert len(stored.roots) == 1  # every keypoint of Horse-10 is labelled: one connected part
    model = load_model(tmp_path / "run" / "best.pt").model
    with torch.no_grad():
        _, pafs = model(torch.zeros(1, 3, 64, 64))[-1]
    assert pafs.shape[1] == 2 * stored.num_limbs
