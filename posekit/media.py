"""Where frames come from and where results go: image files, folders, videos, webcams.

``open_source`` reads a SOURCE string the way ``posekit predict`` takes it: an image file, a folder
of images (sorted by name; an unreadable file is logged and skipped, the rest are read), a video
file, or a webcam index (all digits). Each yields ``Frame`` s of (H, W, 3) uint8 BGR images.

Image ids (for COCO results): the numeric file stem when the stem is all digits, as COCO file
names are (``000000000139.jpg`` -> 139); other files are numbered in name order after the largest
numeric id (from 0 when there is none; unreadable files keep their number, so ids do not shift
when one is skipped). Video and webcam frames use their frame index.

``PredictionWriter`` writes what ``posekit predict`` makes of a source: drawn images under their
own names or one .mp4 at the source's frame rate, an optional window, and a COCO results JSON.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from posekit.data.images import IMAGE_SUFFIXES, list_images, read_image
from posekit.data.results import poses_to_coco_results
from posekit.errors import ConfigError, DatasetError
from posekit.schema import KeypointSchema
from posekit.schema_names import COCO_PERSON_KEYPOINTS
from posekit.structures import Pose
from posekit.visualize import draw_poses

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
DEFAULT_FPS = 30.0
"""Frame rate written when a capture reports none (webcams often report 0)."""

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class Frame:
    """One input frame.

    Attributes:
        image: (H, W, 3) uint8 BGR.
        name: file name of an image, or of the video (for video and webcam frames).
        index: position in the source (0-based: file in the sorted folder, or frame number).
        image_id: COCO image id (see the module docstring).
    """

    image: np.ndarray
    name: str
    index: int
    image_id: int


@dataclass(eq=False)
class FrameSource:
    """Frames of one source; iterate once. ``kind`` is image, folder, video or webcam.

    Attributes:
        kind: what the source is.
        path: the file or folder (None for a webcam).
        total: number of frames when known in advance (video: as the container reports it).
        fps: frame rate of a video or webcam, else None.
        skipped: ``(file name, reason)`` of every unreadable image, filled while iterating.
    """

    kind: str
    path: Path | None
    total: int | None
    fps: float | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    _files: list[Path] = field(default_factory=list, repr=False)
    _capture: Any = field(default=None, repr=False)
    _camera: int | None = field(default=None, repr=False)

    @property
    def is_video(self) -> bool:
        """True for a video file or a webcam (frames of one size, written as one video)."""
        return self.kind in ("video", "webcam")

    @property
    def stem(self) -> str:
        """Base name for outputs: the file / folder stem, or ``webcam<N>``."""
        return f"webcam{self._camera}" if self.path is None else self.path.stem

    def __iter__(self) -> Iterator[Frame]:
        return self._video_frames() if self.is_video else self._image_frames()

    def _image_frames(self) -> Iterator[Frame]:
        ids = _image_ids(self._files)
        for index, (path, image_id) in enumerate(zip(self._files, ids, strict=True)):
            try:
                image = read_image(path)
            except DatasetError as exc:
                if self.kind == "image":
                    raise
                logger.warning("skipped unreadable image %s: %s", path.name, exc)
                self.skipped.append((path.name, str(exc)))
                continue
            yield Frame(image, path.name, index, image_id)

    def close(self) -> None:
        """Release a video capture (also done when its frames run out)."""
        if self._capture is not None:
            self._capture.release()

    def _video_frames(self) -> Iterator[Frame]:
        name = self.path.name if self.path is not None else self.stem
        index = 0
        try:
            while True:
                ok, image = self._capture.read()
                if not ok:
                    break
                yield Frame(image, name, index, index)
                index += 1
        finally:
            self.close()


def open_source(source: str | Path) -> FrameSource:
    """The ``FrameSource`` of an image file, a folder of images, a video file or a webcam index.

    Raises:
        DatasetError: the path does not exist, a folder holds no image, a single image does not
            decode, or a video / webcam cannot be opened.
    """
    text = str(source)
    if text.isdigit():
        capture = cv2.VideoCapture(int(text))
        if not capture.isOpened():
            raise DatasetError(f"cannot open webcam {text}")
        fps = capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
        return FrameSource("webcam", None, None, fps, _capture=capture, _camera=int(text))
    path = Path(source)
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise DatasetError(
                f"no images in folder {path} (looked for {', '.join(IMAGE_SUFFIXES)})"
            )
        return FrameSource("folder", path, len(files), _files=files)
    if not path.exists():
        raise DatasetError(
            f"source not found: {path} (expected an image, a folder of images, a video file or "
            f"a webcam index)"
        )
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return FrameSource("image", path, 1, _files=[path])
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DatasetError(
            f"cannot open {path} as a video (image files need one of the suffixes "
            f"{', '.join(IMAGE_SUFFIXES)}; videos e.g. {', '.join(VIDEO_SUFFIXES[:4])})"
        )
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
    return FrameSource("video", path, count if count > 0 else None, fps, _capture=capture)


def _image_ids(files: list[Path]) -> list[int]:
    """Numeric stems as they are; other files (and repeated numbers) get the next free ids."""
    ids: list[int | None] = [int(p.stem) if p.stem.isdigit() else None for p in files]
    taken: set[int] = set()
    for i, image_id in enumerate(ids):
        if image_id is not None and image_id in taken:
            ids[i] = None
        elif image_id is not None:
            taken.add(image_id)
    free = iter(range(max(taken, default=-1) + 1, 1 << 62))
    return [next(free) if image_id is None else image_id for image_id in ids]


# ---------------------------------------------------------------------- outputs
def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write an image; the format follows the suffix (non-ASCII paths work)."""
    path = Path(path)
    ok, data = cv2.imencode(path.suffix or ".jpg", image)
    if not ok:
        raise DatasetError(f"cannot encode an image as {path.suffix!r} for {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    data.tofile(path)
    return path


class VideoSink:
    """Writes frames to an .mp4 (MPEG-4 part 2, ``mp4v``) at a given frame rate.

    The frame size is taken from the first frame; every frame must have it. Use as a context
    manager, or call ``close``.
    """

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self.frames = 0
        self._writer: Any = None
        self._size: tuple[int, int] | None = None

    def write(self, image: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 BGR frame."""
        size = (image.shape[1], image.shape[0])
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, size)
            if not self._writer.isOpened():
                raise DatasetError(f"cannot write video {self.path} (mp4v codec, {size})")
            self._size = size
        elif size != self._size:
            raise DatasetError(
                f"{self.path}: frame {self.frames} has size {size}, not {self._size}"
            )
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        """Finish the file."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Display:
    """An OpenCV window; ``show`` returns False once the user pressed Esc or q.

    Raises:
        ConfigError: OpenCV was built without GUI support (``opencv-python-headless``).
    """

    WINDOW = "posekit"

    def __init__(self) -> None:
        if not _gui_available(self.WINDOW):
            raise ConfigError(
                "--show needs OpenCV with GUI support, and this OpenCV build has none (the "
                "opencv-python-headless package): install opencv-python, or write the drawn "
                "frames with --out instead"
            )

    def show(self, image: np.ndarray) -> bool:
        """Display a frame; False when the user asked to stop."""
        cv2.imshow(self.WINDOW, image)
        return cv2.waitKey(1) & 0xFF not in (27, ord("q"))

    def close(self) -> None:
        """Close the window."""
        cv2.destroyWindow(self.WINDOW)


def _gui_available(window: str) -> bool:
    """True when OpenCV can open ``window`` (it is then open)."""
    info = [
        line for line in cv2.getBuildInformation().splitlines() if line.strip().startswith("GUI:")
    ]
    if info and info[0].split(":", 1)[1].strip().upper() == "NONE":
        return False
    try:
        cv2.namedWindow(window, cv2.WINDOW_NORMAL)
    except cv2.error:
        return False
    return True


class PredictionWriter:
    """Drawn frames, a window and COCO results of one source (a context manager).

    Args:
        source: the frames' source (a video or webcam is written as ``<out>/<stem>.mp4``, images
            as ``<out>/<file name>``).
        schema: the poses' schema (drawing, results).
        out: folder for drawn output, or None.
        json_path: COCO results file, or None. Keypoints are in COCO's order when the schema's
            real keypoints are COCO's 17 (so ``evaluate_coco`` takes it with a COCO file), else
            in the schema's order; each entry also names its ``file_name`` (and ``frame`` for
            videos). Written on ``close``, also after an interruption.
        display: a ``Display`` to show drawn frames in, or None.
        threshold: minimum keypoint score to draw.
    """

    def __init__(
        self,
        source: FrameSource,
        schema: KeypointSchema,
        *,
        out: str | Path | None = None,
        json_path: str | Path | None = None,
        display: Display | None = None,
        threshold: float = 0.1,
    ) -> None:
        self.source, self.schema, self.threshold = source, schema, threshold
        self.out = None if out is None else Path(out)
        if self.out is not None and source.kind == "folder" and source.path is not None:
            if self.out.resolve() == source.path.resolve():
                raise ConfigError(
                    f"output folder {out} is the source folder: images would be replaced"
                )
        self.json_path = None if json_path is None else Path(json_path)
        self.display = display
        self.video = (
            VideoSink(self.out / f"{source.stem}.mp4", source.fps or DEFAULT_FPS)
            if self.out is not None and source.is_video
            else None
        )
        real = [schema.keypoints[i] for i in schema.real_indices]
        coco = set(real) == set(COCO_PERSON_KEYPOINTS)
        self.keypoint_names = list(COCO_PERSON_KEYPOINTS) if coco else real
        self.results: list[dict[str, Any]] = []
        self.frames = 0
        self.poses = 0

    def write(self, frame: Frame, poses: list[Pose]) -> bool:
        """Record one frame's poses; False when the user closed the window."""
        self.frames += 1
        self.poses += len(poses)
        extra: dict[str, Any] = {"file_name": frame.name}
        if self.source.is_video:
            extra["frame"] = frame.index
        entries = poses_to_coco_results(
            {frame.image_id: poses}, self.schema, keypoint_names=self.keypoint_names
        )
        self.results += [dict(entry, **extra) for entry in entries]
        if self.out is None and self.display is None:
            return True
        drawn = draw_poses(frame.image, poses, self.schema, threshold=self.threshold)
        if self.video is not None:
            self.video.write(drawn)
        elif self.out is not None:
            write_image(self.out / frame.name, drawn)
        return self.display is None or self.display.show(drawn)

    def close(self) -> None:
        """Finish the video, close the window, write the results JSON."""
        if self.video is not None:
            self.video.close()
        if self.display is not None:
            self.display.close()
        if self.json_path is not None:
            self.json_path.parent.mkdir(parents=True, exist_ok=True)
            self.json_path.write_text(json.dumps(self.results))

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- background reading
@dataclass(frozen=True)
class _Failure:
    error: BaseException


_DONE = object()


def prefetch(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Iterate ``items`` in a background thread, up to ``depth`` ahead (decoding images and
    videos releases the GIL, so it overlaps the network). Exceptions are re-raised here."""
    buffer: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def _put(item: Any) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run() -> None:
        try:
            for item in items:
                if not _put(item):
                    return
            _put(_DONE)
        except BaseException as exc:  # handed to the consumer
            _put(_Failure(exc))

    thread = threading.Thread(target=_run, name="posekit-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join(timeout=5.0)
