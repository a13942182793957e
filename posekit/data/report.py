"""Dataset report for ``posekit check-data``: counts, per-keypoint labels, histograms, problems."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posekit.data.coco import CocoKeypointDataset, Problem

# Box-size bins on sqrt(box area) in pixels; 32 and 96 are COCO's small/medium/large borders.
BOX_BINS = (0, 16, 32, 64, 96, 128, 256, 512, np.inf)


@dataclass(frozen=True, eq=False)
class DatasetReport:
    """Statistics of a ``CocoKeypointDataset`` (all arrays over the schema's keypoints)."""

    dataset: CocoKeypointDataset
    visible: np.ndarray  # (K,) count of v=2 labels per keypoint
    occluded: np.ndarray  # (K,) count of v=1 labels per keypoint
    instances_per_image: np.ndarray  # (num_images,)
    box_sizes: np.ndarray  # (N,) sqrt(box area) in pixels
    problems: tuple[Problem, ...]

    @classmethod
    def build(cls, dataset: CocoKeypointDataset) -> DatasetReport:
        """Collect the statistics of ``dataset`` (its problems included)."""
        k = dataset.schema.num_keypoints
        kpts = [r.keypoints for r in dataset.records if r.num_instances]
        v = np.concatenate(kpts)[..., 2] if kpts else np.zeros((0, k))
        boxes = [r.boxes for r in dataset.records]
        wh = (
            np.concatenate(boxes)[:, 2:] - np.concatenate(boxes)[:, :2]
            if boxes
            else np.zeros((0, 2))
        )
        return cls(
            dataset=dataset,
            visible=(v == 2).sum(axis=0),
            occluded=(v == 1).sum(axis=0),
            instances_per_image=np.asarray([r.num_instances for r in dataset.records], dtype=int),
            box_sizes=np.sqrt(np.clip(wh[:, 0] * wh[:, 1], 0, None)),
            problems=tuple(dataset.problems),
        )

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def text(self) -> str:
        """The report as plain text, for the terminal."""
        ds, schema = self.dataset, self.dataset.schema
        recs = ds.records
        lines = [
            f"dataset: {ds.ann_file}",
            f"images: {len(recs)} ({sum(r.num_instances == 0 for r in recs)} without instances), "
            f"skipped: {ds.skipped_images}",
            f"instances with keypoints: {ds.num_instances}; ignore regions: "
            f"{sum(len(r.ignore_regions) for r in recs)} "
            f"({sum(r.num_crowd for r in recs)} crowd); skipped annotations: "
            f"{ds.skipped_annotations}",
            "",
            schema.describe(),
            "",
            "labeled keypoints (visible v=2 / occluded v=1):",
        ]
        width = max(len(n) for n in schema.keypoints)
        virtual = {i for i, _ in schema.virtual_sources}
        for i, name in enumerate(schema.keypoints):
            tag = "  (virtual)" if i in virtual else ""
            lines.append(f"  {name:<{width}}  {self.visible[i]:6d} / {self.occluded[i]:6d}{tag}")
        counts = np.bincount(self.instances_per_image) if len(recs) else np.zeros(1, int)
        lines += ["", "instances per image:"]
        lines += [f"  {n:3d}: {c} image(s)" for n, c in enumerate(counts) if c]
        hist, _ = np.histogram(self.box_sizes, bins=BOX_BINS)
        lines += ["", "box size sqrt(w*h), pixels:"]
        for lo, hi, c in zip(BOX_BINS[:-1], BOX_BINS[1:], hist, strict=True):
            label = f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">= {lo:g}"
            lines.append(f"  {label:>9}: {c}")
        lines += ["", f"problems: {len(self.problems)}"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)

    def plot(self, path: str | Path, *, example: int | None = None) -> Path:
        """Save the histograms and one example image with its skeletons drawn (needs matplotlib)."""
        import matplotlib

        matplotlib.use("Agg")
        import cv2
        import matplotlib.pyplot as plt

        from posekit.visualize import draw_poses

        ds, schema = self.dataset, self.dataset.schema
        fig, axes = plt.subplots(2, 2, figsize=(14, 10))
        y = np.arange(schema.num_keypoints)
        ax = axes[0, 0]
        ax.barh(y, self.visible, label="visible (v=2)")
        ax.barh(y, self.occluded, left=self.visible, label="occluded (v=1)")
        ax.set_yticks(y, schema.keypoints, fontsize=max(4, 9 - schema.num_keypoints // 20))
        ax.invert_yaxis()
        ax.set_title("labeled keypoints")
        ax.legend()
        counts = np.bincount(self.instances_per_image) if len(ds) else np.zeros(1)
        axes[0, 1].bar(np.arange(len(counts)), counts)
        axes[0, 1].set_title("instances per image")
        axes[0, 1].set_xlabel("instances")
        axes[1, 0].hist(self.box_sizes, bins=30)
        axes[1, 0].set_title("box size sqrt(w*h) [px]")
        ax = axes[1, 1]
        ax.axis("off")
        if example is None:
            with_inst = [i for i, r in enumerate(ds.records) if r.num_instances]
            example = max(with_inst, key=lambda i: ds.records[i].num_instances, default=None)
        if example is not None:
            rec = ds.records[example]
            image = ds.load_image(example)
            ignore = rec.ignore_mask()
            image[ignore] = (0.5 * image[ignore] + (0, 0, 127)).astype(np.uint8)  # red tint
            image = draw_poses(image, rec.keypoints, schema)
            ax.imshow(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
            ax.set_title(
                f"image id {rec.image_id}: {rec.num_instances} instance(s), ignored in red"
            )
        fig.suptitle(f"{ds.ann_file.name} — schema {schema.name}")
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return path
