"""A non-human schema end to end with no code edits: ``posekit train`` of the small top-down model
on Horse-10's three labelled photos (22 keypoints, schema read from the file), then ``posekit
eval --gt-boxes --metric ap pck``; and an HRNet file of the authors' published layout fine-tuned
on the same data (backbone loaded, head rebuilt for 22 keypoints, both logged).

Marked slow (about a minute on 2 CPU cores): CI runs it in the dedicated slow step. The model sees
its own training photos in validation: the test shows that training, checkpoints and evaluation
work on any schema, not generalisation (three photos cannot show that).
"""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch

from posekit.cli import main
from tests.models.test_hrnet import _official_state

HORSE = "../shared/data/custom/horse10"
DATA = [f"--data={HORSE}/test_horse10.json", f"--images={HORSE}",
        f"--val-data={HORSE}/test_horse10.json", f"--val-images={HORSE}"]  # fmt: skip
QUIET = ["train.checkpoint_every=100000", "train.log_images=0", "train.batch_size=3"]


def _history(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _table(out: str, first: str) -> dict[str, float]:
    lines = out.splitlines()
    i = next(n for n, line in enumerate(lines) if line.split()[:1] == [first])
    return dict(zip(lines[i].split(), map(float, lines[i + 1].split()), strict=True))


@pytest.mark.slow
def test_a_horse_schema_trains_and_evaluates_with_ap_and_pck(tmp_path, capsys):
    run = tmp_path / "horse"
    argv = ["train", "model.name=topdown_tiny", *DATA, f"--out={run}", "train.epochs=400",
            "train.val_every=100", *QUIET]  # fmt: skip
    assert main(argv) == 0
    history = _history(run)
    assert len(history) == 400 and history[-1]["loss"] < history[0]["loss"] / 2
    aps = [h["val_AP"] for h in history if "val_AP" in h]
    assert max(aps) > 0.3, aps  # untrained 0; measured 0.49-0.56 at 300-400 iterations
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--ann",
                 f"{HORSE}/test_horse10.json", "--images", HORSE, "--gt-boxes",
                 "--flip", "--metric", "ap", "pck", "--threads", "2"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert _table(out, "AP")["AP"] == pytest.approx(
        max(aps), abs=1e-3
    )  # the best epoch, flip test as in validation
    pck = _table(out, "PCK@0.05")["PCK@0.05"]
    assert 0.2 < pck <= 1.0 and "3 instances (0 without a pose)" in out


@pytest.mark.slow
def test_a_published_hrnet_file_fine_tunes_on_the_horse_schema(tmp_path, caplog):
    weights = tmp_path / "pose_hrnet_w32_256x192.pth"  # the authors' layout, random values
    torch.save(_official_state(32), weights)
    run = tmp_path / "hrnet"
    argv = ["train", "model.name=hrnet_w32", f"model.pretrained={weights}", *DATA,
            f"--out={run}", "codec.input_size=[96,128]", "codec.heatmap_size=[24,32]",
            "train.epochs=6", "train.val_every=6", *QUIET]  # fmt: skip
    with caplog.at_level(logging.INFO):
        assert main(argv) == 0
    assert f"fine-tuning from {weights}" in caplog.text
    assert "heatmap head has 17 channels in the checkpoint, the schema" in caplog.text
    history = _history(run)
    assert len(history) == 6 and all(math.isfinite(h["loss"]) for h in history)
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["model_name"] == "hrnet_w32" and state["input"]["color_order"] == "RGB"
    assert state["model"]["head.final_layer.weight"].shape[0] == 22
