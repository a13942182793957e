"""The default network learns: a few hundred iterations of `posekit train`'s defaults on small
synthetic data make the loss fall by a large factor and the val AP rise above a floor.

Marked slow (about a minute on 2 CPU cores with bfloat16, two without): CI runs it in the dedicated slow step.
"""

from __future__ import annotations

import json

import pytest

from posekit.config import load_config
from posekit.engine.trainer import Trainer

# The defaults (paf_tiny, part-colored synthetic figures at 192 x 192, Adam 3e-3) on a fifth of
# the data: 400 training images, 10 epochs of 50 iterations (the default run: 6250), at a constant
# learning rate (a cosine over 500 iterations cools down before the figures are learned).
SMALL = (
    "data.synth.num_images=400",
    "data.synth_val_images=40",
    "data.workers=0",
    "train.epochs=10",
    "train.val_every=5",
    "train.checkpoint_every=100000",
    "schedule.kind=constant",
)


@pytest.mark.slow
def test_default_training_learns(tmp_path):
    config = load_config(None, [*SMALL, f"out={tmp_path}"])
    result = Trainer(config, progress=False).fit()
    history = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == list(range(1, 11))
    assert result.iterations == 500
    first, last = history[0]["loss"], history[-1]["loss"]
    assert last < first / 4, (first, last)  # epoch means: the first already includes the fast drop
    aps = [h["val_AP"] for h in history if "val_AP" in h]
    assert len(aps) == 2 and aps[-1] > 0.2 and aps[-1] > aps[0], aps  # untrained: 0.0; here ~0.35
    assert result.best_ap == max(aps)
    assert (tmp_path / "best.pt").is_file()
