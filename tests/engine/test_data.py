"""Training batches: targets from augmented samples, skipped images, resumable sampler."""

from __future__ import annotations

import numpy as np
import pytest

from posekit.codecs.paf import PafCodec
from posekit.data.coco import CocoKeypointDataset
from posekit.data.synth import SynthConfig, write_dataset
from posekit.data.transforms import AugmentConfig, RandomAffine
from posekit.engine.data import EpochSampler, TargetDataset, collate
from posekit.schema import KeypointSchema


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
    targets = TargetDataset(ds, codec, (64, 64))
    item = targets[0]
    assert item.image.shape == (3, 64, 64) and item.heatmaps.shape == (19, 8, 8)
    assert item.pafs.shape == (38, 8, 8) and item.mask.shape == (8, 8)
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
    targets = TargetDataset(ds, PafCodec(schema), (64, 64))
    assert sum(targets[i] is None for i in range(len(targets))) == 1


def test_sampler_resumes_mid_epoch_and_shards():
    s = EpochSampler(10, seed=1)
    s.set_epoch(2)
    full = s.indices()
    s.set_epoch(2, start=4)
    np.testing.assert_array_equal(s.indices(), full[4:])
    assert sorted(full) == list(range(10))
    s.set_epoch(3)
    assert not np.array_equal(s.indices(), full)
    shards = [EpochSampler(10, seed=1, rank=r, world_size=3) for r in range(3)]
    for sh in shards:
        sh.set_epoch(2)
    assert all(len(sh) == 4 for sh in shards)
    assert set(np.concatenate([sh.indices() for sh in shards])) == set(range(10))
