"""Prediction speed: forward ms and end-to-end frames/s of posekit against the classic Lightweight
OpenPose demo pipeline, both measured in this one run on the same photos, network and threads;
then the top-down predictor's batched crops (``benchmarks/topdown_speed.py``).

Usage: python benchmarks/predict_speed.py [--images 32] [--rounds 2] [--height 256] [--threads 2]
       [--forward-repeats 20] [--skip-policy] [--default-omp]
       [--skip-topdown | --only topdown] [--topdown-images 4] [--topdown-repeats 3]
       [--topdown-models topdown_tiny hrnet_w32]

The header names the CPU, the ISA torch runs at (``ATEN_CPU_CAPABILITY`` / ``ONEDNN_MAX_CPU_ISA``
cap it: ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`` emulates the slow CPU class, float32
only) and whether bfloat16 is native, with ``os.getloadavg()``.

Network: ``lwop_mobilenet`` (schema openpose18, 1 refinement stage; the published architecture)
with random weights drawn so that activations are of order one, as in a trained network
(``realistic_weights``: He-normal convs; the training initialisation shrinks them layer by layer
to ~1e-15, where ``aten::elu`` takes a slow path, 8x slower per call), and the heads' last convs
scaled to maps of ~0.01, which have no peaks. Decoding does depend on the peaks, so every
pipeline is timed twice: decoding its network's maps ("network maps"), and decoding in their place
the PAF codec's targets of the image's ground truth in that pipeline's own input frame ("plausible
maps": the real people of COCO-MINI val).

Pipelines, per image: read (cv2.imread) -> preprocess -> forward -> decode -> draw.

- classic: Lightweight OpenPose's ``demo.py`` as published: ``cv2.resize`` by ``fx = fy`` (cubic),
  ``normalize`` into a float32 copy, ``pad_width`` with ``cv2.copyMakeBorder`` (centered, width at
  least the height), a contiguous NCHW tensor, forward with autograd on (the demo has no
  ``no_grad``); maps upsampled x4 (bicubic) and decoded by the classic peak search and per-limb
  grouping (``benchmarks/paf_decode.ClassicDecoder``), keypoints mapped back as the demo does,
  drawn limb by limb and blended with ``cv2.addWeighted``.
- classic + no_grad: the same under ``torch.no_grad`` (the baseline of the speedup: a fair user
  of the classic code would add it).
- posekit: ``inference.Predictor`` (resize keeping aspect, right/bottom padding to a multiple of 8
  only, NHWC buffer = channels-last input, BatchNorm folded, ``inference_mode``), decoding at
  output resolution (``PafCodec.decode``), ``visualize.draw_poses``.
- posekit, read ahead: the same with images read in a background thread (``media.prefetch``).
- posekit, bfloat16: the forward pass under bfloat16 autocast (``posekit predict --bf16``): about
  1.7x faster on CPUs with native bfloat16 (AVX512-BF16 / AMX), slower on others.
- posekit, ONNX Runtime fp32 / int8, OpenVINO fp32 (when installed): the same network exported by
  ``posekit.export`` (``benchmarks/onnx_speed.py``; int8: static QDQ calibrated on 32 COCO-MINI
  train photos) and run as ``posekit predict --backend`` runs it, ``--threads`` threads; the
  forward table adds their network ms beside eager torch's.

All pipelines run in this process, so under the same OpenMP wait policy: PASSIVE, as
``posekit predict`` / ``eval`` set it, unless ``OMP_WAIT_POLICY`` is set or ``--default-omp`` is
given (the script then runs under that policy). A last table times the forward pass in child
processes under OpenMP's default policy and under PASSIVE: on a machine whose cores are busy with
other work, the default makes OpenMP threads spin-wait for a thread that lost its core.

Top-down section (``--skip-topdown`` omits it, ``--only topdown`` runs only it; details in
``benchmarks/topdown_speed.py``): ``TopDownPredictor.predict`` of ``topdown_tiny`` (and
``hrnet_w32`` when in the zoo), random weights, float32 and (native only) bfloat16, on 16 crops per
photo: the ground-truth person boxes of ``--topdown-images`` COCO-MINI val photos cycled to 16, the
copies jittered. Two tables:

- ms per crop of one call with the 16 crops (one forward of batch 16) against 16 calls of one
  crop, and their ratio (goal <= 1/3);
- one 16-crop call split at ``runtime.run``, without and with the flip test: pre (``matrices`` +
  ``crop_batch``), forward, post (``unflip``, map back, ``codec.decode``) in ms, and pre + post as
  a share of the forward (goal <= 10 %).

The load of the machine is reported: timings differ up to 3x between machines and runs; compare
within one run only. Images and pipelines are interleaved so that load changes hit all alike.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import onnx_speed  # noqa: E402 - exported pipelines, benchmarks/onnx_speed.py
import topdown_speed  # noqa: E402 - the top-down section, benchmarks/topdown_speed.py
from paf_decode import ClassicDecoder  # noqa: E402 - the reference decoder of benchmarks/

from posekit.codecs.paf import PafCodec  # noqa: E402
from posekit.data.coco import CocoKeypointDataset, ImageRecord  # noqa: E402
from posekit.geometry import transform_points  # noqa: E402
from posekit.inference import Maps, Predictor  # noqa: E402
from posekit.media import prefetch  # noqa: E402
from posekit.models.cost import multiply_adds  # noqa: E402
from posekit.models.zoo import build_model  # noqa: E402
from posekit.structures import Pose  # noqa: E402
from posekit.visualize import draw_poses  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_mini"
STAGES = ("read", "preprocess", "forward", "decode", "draw")


# ---------------------------------------------------------------------- classic pipeline
def _classic_normalize(img: np.ndarray, mean: float = 128.0, scale: float = 1 / 256) -> np.ndarray:
    img = np.array(img, dtype=np.float32)
    return (img - mean) * scale


def _classic_pad_width(
    img: np.ndarray, stride: int, pad_value: tuple, min_dims: list[int]
) -> tuple[np.ndarray, list[int]]:
    h, w, _ = img.shape
    h = min(min_dims[0], h)
    min_dims[0] = math.ceil(min_dims[0] / float(stride)) * stride
    min_dims[1] = max(min_dims[1], w)
    min_dims[1] = math.ceil(min_dims[1] / float(stride)) * stride
    top, left = (min_dims[0] - h) // 2, (min_dims[1] - w) // 2
    pad = [top, left, min_dims[0] - h - top, min_dims[1] - w - left]
    padded = cv2.copyMakeBorder(
        img, pad[0], pad[2], pad[1], pad[3], cv2.BORDER_CONSTANT, value=pad_value
    )
    return padded, pad


class Classic:
    """The demo's pipeline (see the module docstring); ``grad`` keeps autograd on as the demo."""

    upsample = 4  # demo.py's upsample_ratio

    def __init__(self, model: torch.nn.Module, codec: PafCodec, height: int, grad: bool) -> None:
        self.model, self.codec, self.height, self.grad = model, codec, height, grad
        self.decoder = ClassicDecoder(codec, upsample=self.upsample)

    def geometry(self, w: int, h: int) -> tuple[np.ndarray, tuple[int, int]]:
        """Image -> input affine and padded input (W, H) of the demo's preprocessing."""
        scale = self.height / h
        new_w, new_h = round(w * scale), round(h * scale)
        pad_w = math.ceil(max(new_w, self.height) / 8) * 8
        pad_h = math.ceil(self.height / 8) * 8
        left, top = (pad_w - new_w) // 2, (pad_h - new_h) // 2
        fx, fy = new_w / w, new_h / h
        matrix = np.array([[fx, 0, 0.5 * fx - 0.5 + left], [0, fy, 0.5 * fy - 0.5 + top]])
        return matrix, (pad_w, pad_h)

    def gt_maps(self, kpts_img: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, ...]:
        """The codec's targets of ``kpts_img`` in this pipeline's input frame (image (W, H))."""
        return _encode(self.codec, kpts_img, *self.geometry(*size))

    def run(self, path: str, gt_maps: tuple | None, times: dict) -> int:
        """One image; ``gt_maps`` replace the network's maps for decoding when given."""
        t0 = time.perf_counter()
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        t1 = time.perf_counter()
        scale = self.height / img.shape[0]
        scaled = cv2.resize(img, (0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        scaled = _classic_normalize(scaled)
        min_dims = [self.height, max(scaled.shape[1], self.height)]
        padded, pad = _classic_pad_width(scaled, 8, (0, 0, 0), min_dims)
        tensor = torch.from_numpy(padded).permute(2, 0, 1).unsqueeze(0).float().contiguous()
        t2 = time.perf_counter()
        with nullcontext() if self.grad else torch.no_grad():
            heatmaps, pafs = self.model(tensor)[-1]
        heatmaps, pafs = heatmaps[0].detach().numpy(), pafs[0].detach().numpy()
        t3 = time.perf_counter()
        if gt_maps is not None:
            heatmaps, pafs = gt_maps
        poses = self.decoder(heatmaps, pafs)
        kpts = [_classic_to_image(p, self.upsample, pad, scale) for p in poses]
        t4 = time.perf_counter()
        drawn = img.copy()
        limbs = self.codec.schema.limbs[:-2]  # the demo skips the two ear limbs
        for k in kpts:
            for limb in limbs:
                a, b = k[limb.src], k[limb.dst]
                if a[2] > 0:
                    cv2.circle(drawn, (int(a[0]), int(a[1])), 3, (0, 224, 255), -1)
                if b[2] > 0:
                    cv2.circle(drawn, (int(b[0]), int(b[1])), 3, (0, 224, 255), -1)
                if a[2] > 0 and b[2] > 0:
                    pa, pb = (int(a[0]), int(a[1])), (int(b[0]), int(b[1]))
                    cv2.line(drawn, pa, pb, (0, 224, 255), 2)
        cv2.addWeighted(img, 0.6, drawn, 0.4, 0)
        t5 = time.perf_counter()
        for stage, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            times[stage].append(dt)
        return len(poses)


def _classic_to_image(pose: Pose, up: int, pad: list[int], scale: float) -> np.ndarray:
    """demo.py: ``x = (x_upsampled * stride / upsample - pad_left) / scale``."""
    k = pose.keypoints.copy()
    up_xy = k[:, :2] * up + (up - 1) / 2  # ClassicDecoder reports output pixels
    k[:, 0] = (up_xy[:, 0] * 8 / up - pad[1]) / scale
    k[:, 1] = (up_xy[:, 1] * 8 / up - pad[0]) / scale
    return k


# ---------------------------------------------------------------------- posekit pipeline
class Posekit:
    """``Predictor`` stages, timed one by one (``Predictor.predict`` = prepare, forward, decode)."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    def gt_maps(self, kpts_img: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, ...]:
        """The codec's targets of ``kpts_img`` in the Predictor's input frame (image (W, H))."""
        geo = self.predictor.placement(size)
        return _encode(self.predictor.codec, kpts_img, geo.matrix, geo.padded)

    def run(self, path: str, gt_maps: tuple | None, times: dict) -> int:
        """One image; ``gt_maps`` replace the network's maps for decoding when given."""
        t0 = time.perf_counter()
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        t1 = time.perf_counter()
        poses, (t2, t3, t4) = self.predict(image, gt_maps)
        draw_poses(image, poses, self.predictor.schema, threshold=0.1)
        t5 = time.perf_counter()
        for stage, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            times[stage].append(dt)
        return len(poses)

    def predict(self, image: np.ndarray, gt_maps: tuple | None) -> tuple[list[Pose], tuple]:
        p = self.predictor
        geo = p.placement((image.shape[1], image.shape[0]))
        x = p.prepare([image], geo)
        t2 = time.perf_counter()
        heatmaps, pafs = p.forward(x)
        t3 = time.perf_counter()
        maps = Maps(*(gt_maps or (heatmaps[0], pafs[0])), p.output_to_image(geo))
        poses = p.decode(maps)
        return poses, (t2, t3, time.perf_counter())

    def run_all(self, paths: list[str], gt_maps: list) -> float:
        """Wall time of the whole list with images read ahead in a background thread."""
        start = time.perf_counter()
        items = zip(paths, gt_maps, strict=True)
        for image, maps in prefetch((cv2.imread(p, cv2.IMREAD_COLOR), m) for p, m in items):
            poses, _ = self.predict(image, maps)
            draw_poses(image, poses, self.predictor.schema, threshold=0.1)
        return time.perf_counter() - start


# ---------------------------------------------------------------------- helpers
def realistic_weights(model: torch.nn.Module, seed: int = 0, map_scale: float = 0.002) -> None:
    """In place: He-normal conv weights (fan-in; activations of order one through the network,
    as in a trained one) and zero biases; the last conv of each ``heatmaps`` / ``pafs`` head
    scaled by ``map_scale``, so the maps have no peaks for the decoders to chase."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in (m for m in model.modules() if isinstance(m, torch.nn.Conv2d)):
            conv.weight.normal_(0.0, (2.0 / conv.weight[0].numel()) ** 0.5, generator=gen)
            if conv.bias is not None:
                conv.bias.zero_()
        for name, head in model.named_modules():
            if name.split(".")[-1] in ("heatmaps", "pafs"):
                convs = [m for m in head.modules() if isinstance(m, torch.nn.Conv2d)]
                convs[-1].weight.mul_(map_scale)


def _encode(
    codec: PafCodec, kpts_img: np.ndarray, matrix: np.ndarray, padded: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    kpts = kpts_img.copy()
    kpts[..., :2] = transform_points(kpts[..., :2], matrix)
    targets = codec.encode(kpts, padded)
    return targets.heatmaps, targets.pafs


class CpuLoad:
    """Share of all cores used by *other* processes since construction (/proc/stat, Linux)."""

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
        except (OSError, ValueError):
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        usage = resource.getrusage(resource.RUSAGE_SELF)
        busy = (sum(values) - values[3] - values[4]) / ticks
        return busy, sum(values) / ticks, usage.ru_utime + usage.ru_stime

    def others(self) -> float:
        end = self._sample()
        if self.start is None or end is None:
            return math.nan
        busy, total, own = (e - s for e, s in zip(end, self.start, strict=True))
        return max(busy - own, 0.0) / total


def _median_ms(values: list[float]) -> float:
    return 1e3 * statistics.median(values)


def _load_average() -> str:
    """``os.getloadavg()``: 1, 5 and 15 minute averages."""
    return "/".join(f"{v:.2f}" for v in os.getloadavg()) + " (1/5/15 min)"


def forward_table(
    model: torch.nn.Module, predictor: Predictor, exported: dict, args: argparse.Namespace
) -> None:
    """Forward ms of one input size (640x480 photo at height 256: 344x256) by execution mode."""
    w = math.ceil(round(640 * args.height / 480) / 8) * 8
    x = torch.from_numpy(np.random.default_rng(0).uniform(-0.5, 0.5, (1, 3, args.height, w)))
    x = x.float()
    cl_model = predictor.runtime.model  # BatchNorm folded, channels-last
    plain_cl = build_model("lwop_mobilenet", "openpose18", num_refinement_stages=1).eval()
    plain_cl.load_state_dict(model.state_dict())
    plain_cl = plain_cl.to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    modes = {
        "NCHW, autograd on (demo)": (model, x, nullcontext),
        "NCHW, no_grad": (model, x, torch.no_grad),
        "channels-last, no_grad": (plain_cl, x_cl, torch.no_grad),
        "channels-last, inference_mode": (plain_cl, x_cl, torch.inference_mode),
        "+ BatchNorm folded (posekit)": (cl_model, x_cl, torch.inference_mode),
    }
    batch = x_cl.repeat(4, 1, 1, 1).contiguous(memory_format=torch.channels_last)
    modes["posekit, batch of 4 (per image)"] = (cl_model, batch, torch.inference_mode)
    times: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.forward_repeats):
        for name, (net, inp, ctx) in modes.items():  # interleaved: load changes hit all modes
            with ctx():
                start = time.perf_counter()
                net(inp)
                times[name].append((time.perf_counter() - start) / len(inp))
    base = statistics.median(times["NCHW, no_grad"])
    eager = statistics.median(times["+ BatchNorm folded (posekit)"])
    print(f"\nForward pass, input {w}x{args.height}, median of {args.forward_repeats} (ms)")
    for name in modes:
        med = statistics.median(times[name])
        print(f"  {name:<32} {1e3 * med:7.1f}   x{base / med:4.2f} vs no_grad")
    flops = 2 * multiply_adds(cl_model, x_cl)  # no Linear layers here: all convolutions
    print(f"  convolutions: {flops / 1e9:.2f} GFLOP per forward pass, {flops / eager / 1e9:.0f} "
          f"GFLOP/s over posekit's whole pass (peak: 32 flops per cycle and core with AVX2's "
          f"two FMA units, 64 with AVX-512's)")  # fmt: skip
    x_nhwc = np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())
    for name, ms in onnx_speed.forward_rows(exported, x_nhwc, args.forward_repeats).items():
        label = name.replace("posekit, ", "")
        print(f"  {label:<32} {ms:7.1f}   x{1e3 * base / ms:4.2f} vs no_grad, "
              f"{ms / (1e3 * eager):.2f} of posekit torch's time")  # fmt: skip


def _posekit_forward_ms(args: argparse.Namespace) -> float:
    """Median forward ms of the posekit Predictor's network (input of a 640x480 photo)."""
    model = build_model("lwop_mobilenet", "openpose18", num_refinement_stages=1)
    realistic_weights(model)
    predictor = Predictor(model, model.schema, input_height=args.height)
    image = np.zeros((480, 640, 3), np.uint8)
    x = predictor.prepare([image], predictor.placement((640, 480)))
    times = []
    for _ in range(11):
        start = time.perf_counter()
        predictor.forward(x)
        times.append(time.perf_counter() - start)
    return _median_ms(times[1:])


def policy_table(args: argparse.Namespace) -> None:
    """Forward ms in child processes: OpenMP's default wait policy against PASSIVE."""
    times = defaultdict(list)
    for _ in range(2):
        for policy in ("(default)", "PASSIVE"):
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            if policy != "(default)":
                env["OMP_WAIT_POLICY"] = policy
            flags = ("--threads", args.threads, "--height", args.height)
            argv = [sys.executable, __file__, "--forward-only", *map(str, flags)]
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
            times[policy].append(float(done.stdout.split()[-1]))
    print("\nOpenMP wait policy: posekit forward ms in child processes (2 runs each)")
    for policy, values in times.items():
        print(f"  OMP_WAIT_POLICY={policy:<10} {' '.join(f'{v:8.1f}' for v in values)}")


def bottomup_tables(records: list[ImageRecord], args: argparse.Namespace) -> dict[str, float]:
    """Forward table, end-to-end table and (unless skipped) the OpenMP table of the bottom-up
    pipelines on ``records``; returns the end-to-end frames/s by name."""
    paths = [str(r.file) for r in records]
    people = sum(r.num_instances for r in records)
    model = build_model("lwop_mobilenet", "openpose18", num_refinement_stages=1).eval()
    realistic_weights(model)
    schema = model.schema
    codec = PafCodec(schema)
    predictor = Predictor(model, schema, codec=codec, input_height=args.height)
    exported, export_seconds = onnx_speed.exported_predictors(model, args.height, args.threads)
    print("\n" + ", ".join(f"{k} {v:.1f} s" for k, v in export_seconds.items())
          + " (parity gate included)")  # fmt: skip
    forward_table(model, predictor, exported, args)

    pipelines = {
        "classic (demo: autograd on)": Classic(model, codec, args.height, grad=True),
        "classic + no_grad": Classic(model, codec, args.height, grad=False),
        "posekit": Posekit(predictor),
        "posekit, bfloat16 (--bf16)": Posekit(
            Predictor(model, schema, codec=codec, input_height=args.height, precision="bfloat16")
        ),
        **{name: Posekit(p) for name, p in exported.items()},
    }
    gt_maps = {  # encoded before timing: not part of any pipeline
        name: [pipe.gt_maps(r.keypoints, (r.width, r.height)) for r in records]
        for name, pipe in pipelines.items()
    }
    results = {}
    for maps in ("plausible", "network"):
        times = {name: defaultdict(list) for name in pipelines}
        found = defaultdict(int)
        ahead = []
        for r in range(args.rounds):
            for i, path in enumerate(paths):
                order = list(pipelines) if (i + r) % 2 == 0 else list(pipelines)[::-1]
                for name in order:
                    override = gt_maps[name][i] if maps == "plausible" else None
                    found[name] += pipelines[name].run(path, override, times[name])
            override = gt_maps["posekit"] if maps == "plausible" else [None] * len(paths)
            ahead.append(pipelines["posekit"].run_all(paths, override))
        results[maps] = (times, found, ahead)

    print(
        f"\nEnd to end on {len(paths)} COCO-MINI val photos with {people} people, x{args.rounds}, "
        f"height {args.height}: median ms per image by stage; frames/s = images / total time"
    )
    head = " ".join(f"{s:>10}" for s in STAGES)
    print(f"  {'maps / pipeline':<40} {head} {'frames/s':>9} {'poses':>6}")
    summary = {}
    for maps, (times, found, ahead) in results.items():
        base = None
        for name, stage_times in times.items():
            total = sum(sum(v) for v in stage_times.values())
            fps = len(stage_times["read"]) / total
            if name == "classic + no_grad":
                base = fps
            summary[f"{maps}/{name}"] = fps
            cells = " ".join(f"{_median_ms(stage_times[s]):10.1f}" for s in STAGES)
            per_image = found[name] / len(stage_times["read"])
            print(f"  {maps + ' / ' + name:<40} {cells} {fps:9.2f} {per_image:6.1f}")
        fps = len(paths) / statistics.median(ahead)
        summary[f"{maps}/posekit, read ahead"] = fps
        print(f"  {maps + ' / posekit, read ahead':<40} {'':>54} {fps:9.2f}")
        for name in ("posekit", "posekit, read ahead", "posekit, bfloat16 (--bf16)", *exported):
            ratio = summary[f"{maps}/{name}"] / base
            print(f"    speedup of {name} over classic + no_grad ({maps} maps): x{ratio:.2f}")
        for name in ("posekit", *exported):
            demo = summary[f"{maps}/{name}"] / summary[f"{maps}/classic (demo: autograd on)"]
            print(f"    speedup of {name} over the demo as published: x{demo:.2f}")
    if not args.skip_policy:
        policy_table(args)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32, help="val images with people (max 32)")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the images")
    parser.add_argument("--height", type=int, default=256, help="network input height")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--forward-repeats", type=int, default=20)
    parser.add_argument("--skip-policy", action="store_true", help="omit the OpenMP table")
    parser.add_argument("--default-omp", action="store_true", help="keep OpenMP's wait policy")
    parser.add_argument("--skip-topdown", action="store_true", help="omit the top-down tables")
    parser.add_argument("--only", choices=("topdown",), help="run only this section")
    parser.add_argument("--topdown-images", type=int, default=4, help="photos of 16 crops each")
    parser.add_argument("--topdown-repeats", type=int, default=3, help="passes over the photos")
    parser.add_argument("--topdown-models", nargs="+", default=list(topdown_speed.MODEL_NAMES))
    parser.add_argument("--forward-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only and args.skip_topdown:
        parser.error("--only topdown and --skip-topdown exclude each other")
    if not (args.default_omp or args.forward_only or "OMP_WAIT_POLICY" in os.environ):
        # read when torch loads OpenMP (already done here): start again with the policy set
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)
    torch.set_num_threads(args.threads)
    if args.forward_only:  # a child of policy_table
        print(f"{_posekit_forward_ms(args):.2f}")
        return
    torch.manual_seed(0)
    load = CpuLoad()
    print(
        f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} cores, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(default)')}, "
        f"load average {_load_average()} at start\n{topdown_speed.machine()}"
    )

    dataset = CocoKeypointDataset(
        DATA / "annotations/person_keypoints_val2017.json",
        DATA / "images/val2017",
        schema="openpose18",
    )
    records = [r for r in dataset.records if r.num_instances > 0]
    summary = {}
    if args.only != "topdown":
        summary.update(bottomup_tables(records[: args.images], args))
    if not args.skip_topdown:
        top = records[: args.topdown_images]
        summary.update(topdown_speed.run(top, args.topdown_repeats, args.topdown_models,
                                          dataset.schema))  # fmt: skip
    print(
        f"\nLoad: other processes used {100 * load.others():.0f}% of all cores during the run; "
        f"load average {_load_average()} at the end"
    )
    print(json.dumps({k: round(v, 3) for k, v in summary.items()}))


if __name__ == "__main__":
    main()
