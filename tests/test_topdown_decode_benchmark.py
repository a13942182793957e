"""``benchmarks/topdown_decode.py`` on an untrained ``topdown_tiny`` and three synthetic images:
the sweep's rows, the checkpoint's own decode config marked and equal to the predictor's poses,
and the checkpoints it refuses (exit status 2, naming the file)."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from posekit.codecs.heatmap import HeatmapDecodeConfig
from posekit.data.coco import CocoKeypointDataset
from posekit.data.synth import SynthConfig, write_dataset
from posekit.errors import CheckpointError
from tests.checkpoint_files import noisy_lwop, write_posekit_checkpoint, write_topdown_checkpoint

_BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    """The script as a module, its sibling imports (``_common``, ``topdown_speed``) found."""
    name = "posekit_benchmark_topdown_decode"
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(_BENCHMARKS))
        spec = importlib.util.spec_from_file_location(name, _BENCHMARKS / "topdown_decode.py")
        module = importlib.util.module_from_spec(spec)
        patch.setitem(sys.modules, name, module)  # its dataclasses need it
        spec.loader.exec_module(module)
        yield module


@pytest.fixture(scope="module")
def run(bench, tmp_path_factory):
    """(model, dataset, annotation file, outputs with flip) of three 64 x 64 synthetic images."""
    root = tmp_path_factory.mktemp("topdown_decode")
    model = bench.heatmap_model(write_topdown_checkpoint(root / "best.pt"))
    config = SynthConfig(num_images=3, image_size=(64, 64), max_instances=2)
    ann = write_dataset(root / "synth", model.schema, config, split="val", progress=False)
    dataset = CocoKeypointDataset(ann, root / "synth/images/val", schema=model.schema)
    outputs = bench.network_outputs(model.predictor(flip=True), dataset)
    return model, dataset, ann, outputs


def test_sweep_rows(bench, run):
    model, dataset, ann, outputs = run
    assert sorted(outputs.image_ids) == [r.image_id for r in dataset.records]
    crops = sum(len(c.to_image) for c in outputs.crops.values())
    assert crops == sum(r.num_instances for r in dataset.records) > 0
    rows = bench.decode_sweep(model.codec, outputs, ann)
    assert [r.config for r in rows] == list(bench.SWEEP)  # topdown_tiny decodes with dark, blur 1
    assert [r.own for r in rows] == [True] + [False] * 6
    for r in rows:
        assert all(0.0 <= r.metrics[k] <= 1.0 for k in bench.METRICS), r
        assert r.decode_ms > 0
    lines = bench.table_lines(rows)
    assert len(lines) == 1 + 7
    assert lines[1].startswith("dark, blur 1 *") and lines[-1].startswith("none (argmax)")


def test_own_decode_is_the_predictors(bench, run):
    """The cached outputs decoded by the codec's own config give ``TopDownPredictor.predict``'s
    poses on the ground-truth boxes (the same forward pass twice: equal up to float32 rounding,
    1e-4 image px)."""
    model, dataset, _, outputs = run
    predictor = model.predictor(flip=True)
    poses, _ = bench.decode_outputs(model.codec, outputs, model.codec.decode_config)
    for i, rec in enumerate(dataset.records):
        expected = predictor.predict(dataset.load_image(i), rec.boxes)
        got = sorted(poses[rec.image_id], key=lambda p: -p.score)
        assert len(got) == len(expected) == rec.num_instances
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_allclose(a.keypoints, b.keypoints, rtol=0, atol=1e-4)


def test_own_decode_outside_the_sweep_gets_a_row(bench, run):
    model, _, ann, outputs = run
    own = HeatmapDecodeConfig(refine="dark", blur_kernel=9)
    rows = bench.decode_sweep(dataclasses.replace(model.codec, decode_config=own), outputs, ann)
    assert len(rows) == 8 and rows[-1].config == own
    assert [r.own for r in rows] == [False] * 7 + [True]


def test_refuses_a_checkpoint_without_heatmap_codec(bench, tmp_path):
    path = write_posekit_checkpoint(tmp_path / "paf.pt", noisy_lwop("coco_person"), 128)
    with pytest.raises(CheckpointError, match=r"paf\.pt: a posekit bottomup model with codec "
                       r"'paf'; expected a posekit top-down checkpoint with a heatmap codec"):  # fmt: skip
        bench.heatmap_model(path)


def test_missing_checkpoint_exits_2(bench, tmp_path, monkeypatch, capsys):
    missing = tmp_path / "missing.pt"
    monkeypatch.setattr(sys, "argv", ["topdown_decode.py", "--checkpoint", str(missing)])
    with pytest.raises(SystemExit) as exc:
        bench.main()
    assert exc.value.code == 2
    assert f"error: checkpoint not found: {missing}" in capsys.readouterr().err
