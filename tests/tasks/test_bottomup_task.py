"""The bottom-up task: items (augmented images + PAF targets), batches, skipped images, loss parts,
the validation predictor."""

from __future__ import annotations

import pytest

from posekit.codecs.paf import PafCodec
from posekit.data.coco import CocoKeypointDataset
from posekit.data.synth import SynthConfig, write_dataset
from posekit.data.transforms import AugmentConfig, RandomAffine
from posekit.errors import ConfigError
from posekit.inference import BottomUpPredictor
from posekit.models.zoo import build_model
from posekit.schema import KeypointSchema
from posekit.tasks import TASKS, BottomUpTask, collate
from posekit.tasks.bottomup import BottomUpItems


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    schema = KeypointSchema.named("coco_person_neck")
    ann = write_dataset(
        out, schema, SynthConfig(num_images=6, image_size=(96, 96), seed=3), progress=False
    )
    return ann, out / "images/train", schema


def test_items_and_batches(synth):
    ann, images, schema = synth
    ds = CocoKeypointDataset(ann, images, schema=schema)
    ds.transform = RandomAffine(schema, AugmentConfig(input_size=(64, 64)))
    codec = PafCodec(schema)
    targets = BottomUpItems(ds, codec, (64, 64))
    item = targets[0]
    t = item.targets
    assert item.image.shape == (3, 64, 64) and t["heatmaps"].shape == (19, 8, 8)
    assert t["pafs"].shape == (38, 8, 8) and t["mask"].shape == (8, 8)
    assert float(item.image.abs().max()) <= 0.5
    batch = collate([targets[0], None, targets[1]])
    assert len(batch) == 2 and batch.skipped == 1
    assert collate([None]).skipped == 1 and collate([]) is None


def test_unreadable_image_is_skipped(synth, tmp_path):
    ann, images, schema = synth
    broken = tmp_path / "images"
    broken.mkdir()
    for p in images.iterdir():
        (broken / p.name).symlink_to(p)
    first = sorted(broken.iterdir())[0]
    first.unlink()
    first.write_bytes(b"not a jpeg")
    ds = CocoKeypointDataset(ann, broken, schema=schema)
    ds.transform = RandomAffine(schema, AugmentConfig(input_size=(64, 64)))
    targets = BottomUpItems(ds, PafCodec(schema), (64, 64))
    assert sum(targets[i] is None for i in range(len(targets))) == 1


def test_task_items_loss_parts_and_predictor(synth):
    ann, images, schema = synth
    codec = PafCodec(schema)
    task = BottomUpTask(codec, AugmentConfig(input_size=(64, 64)), stage_weights=[0.5, 1.0])
    assert TASKS["bottomup"] is BottomUpTask and task.family == codec.family == "bottomup"
    items = task.train_dataset(CocoKeypointDataset(ann, images, schema=schema))
    batch = collate([items[0], items[1]])
    model = build_model("paf_tiny", codec=codec, num_refinement_stages=1)
    loss = task.loss(model(batch.images), batch)
    assert set(loss.parts) == set(task.loss_names) == {"heatmaps", "pafs"}
    assert all(len(v) == 2 for v in loss.parts.values())  # one value per stage
    expected = sum(w * (h + p) for w, h, p in zip([0.5, 1.0], *loss.parts.values(), strict=True))
    assert float(loss.total.detach()) == pytest.approx(expected, rel=1e-5)
    predictor = task.predictor(model, flip=True, device="cpu", channels_last=False)
    assert isinstance(predictor, BottomUpPredictor) and predictor.flip
    assert predictor.input_height == 64 and task.input_spec.height == 64
    assert predictor.runtime.model is not model  # validation runs a folded copy


def test_task_refuses_an_input_size_off_the_stride():
    codec = PafCodec(KeypointSchema.named("coco_person"))
    with pytest.raises(ConfigError, match="multiples of the stride 8"):
        BottomUpTask(codec, AugmentConfig(input_size=(60, 64)))


@pytest.mark.parametrize(
    ("window", "size"), [(1.0, (96, 64)), (0.667, (64, 40)), (0.5, (48, 32)), (0.01, (8, 8))]
)
def test_train_window_trains_on_windows_and_validates_at_the_input_size(synth, window, size):
    ann, images, schema = synth
    task = BottomUpTask(PafCodec(schema), AugmentConfig(input_size=(96, 64), train_window=window))
    assert task.train_size == size  # multiples of the stride, at least one stride
    item = task.train_dataset(CocoKeypointDataset(ann, images, schema=schema))[0]
    assert item.image.shape == (3, size[1], size[0])
    assert item.targets["heatmaps"].shape == (19, size[1] // 8, size[0] // 8)
    assert task.input_spec.height == 64  # validation and prediction see the whole input
    described = task.describe()
    assert described.startswith(f"{size[0]}x{size[1]} windows of whole images at 96x64") == (
        window < 1
    )


def test_config_foreground_weights_reach_both_families_losses():
    """``train.fg_weights`` (default (10, 4)): the bottom-up loss takes both, a top-down heatmap
    loss the first; ``[0, 0]`` gives the plain losses."""
    from posekit.codecs import build_codec
    from posekit.config import load_config
    from posekit.tasks import build_task

    coco = KeypointSchema.named("coco_person")
    for overrides, (a, b) in (((), (10.0, 4.0)), (("train.fg_weights=[0, 0]",), (0.0, 0.0))):
        config = load_config(None, overrides)
        assert build_task(PafCodec(coco), config).criterion.fg_weights == (a, b)
        top = load_config(None, (*overrides, "model.name=topdown_tiny"))
        codec = build_codec("udp", coco, input_size=(96, 128), heatmap_size=(24, 32))
        assert build_task(codec, top).criterion.fg_weight == a
