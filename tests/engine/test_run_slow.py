"""Whole `posekit train` processes: SIGKILL + --resume auto, and a 2-process gloo torchrun.

Marked slow: they run in CI's dedicated slow step.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import torch

from posekit.models.record import load_checkpoint
from tests.tiny_run import TINY_RUN

TINY = [*TINY_RUN, "train.checkpoint_every=1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _train(out, *extra, **kwargs):
    cmd = [sys.executable, "-m", "posekit", "train", "--out", str(out), *TINY, *extra]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_same_weights(tmp_path):
    straight = _train(tmp_path / "a", "train.epochs=3")
    assert straight.returncode == 0, straight.stderr[-2000:]

    cmd = [
        sys.executable,
        "-m",
        "posekit",
        "train",
        "--out",
        str(tmp_path / "b"),
        *TINY,
        "train.epochs=3",
    ]
    proc = subprocess.Popen(
        cmd, env=ENV, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    seen = []
    for line in proc.stderr:  # event-driven: kill when the first epoch has been logged
        seen.append(line)
        if "epoch 1, iteration" in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "".join(seen)[-2000:]
    killed_at = load_checkpoint(tmp_path / "b" / "last.pt")["iteration"]
    assert 0 < killed_at < 6  # killed mid-run, after checkpoints were written

    resumed = _train(tmp_path / "b", "train.epochs=3", "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed" in resumed.stderr
    a = load_checkpoint(tmp_path / "a" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "last.pt")
    assert a["iteration"] == b["iteration"] == 6
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name


@pytest.mark.slow
def test_two_process_gloo_torchrun(tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "posekit",
        "train",
        "--out",
        str(out),
        *TINY,
        "train.epochs=1",
        "train.checkpoint_every=1000",
        "--device",
        "cpu",
    ]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.glob("*.pt")) == ["best.pt", "last.pt"]
    state = load_checkpoint(out / "last.pt")
    # 8 images over 2 ranks, batch 4: one step per rank and epoch
    assert state["epoch"] == 1 and state["iteration"] == 1
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1  # rank 0 logs only
    assert not any(k.startswith("module.") for k in state["model"])
