"""EpochSampler: seeded, resumable mid-epoch, sharded."""

from __future__ import annotations

import numpy as np

from posekit.engine.data import EpochSampler


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
