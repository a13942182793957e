"""KeypointSchema: the one description of a keypoint set (names, limbs, flip, sigmas, virtual points).

Every other module takes a schema as an argument; no other code holds keypoint indices. A schema is
built from YAML, from a COCO ``categories`` entry, or by name (``KeypointSchema.named``), and is
validated at construction. Derived, never hand-written:

- ``flip_index`` (K,): keypoint ``i`` of a horizontally flipped image is keypoint ``flip_index[i]``
  of the original; from left/right names (``schema_names``) or given as ``flip_pairs``.
- ``limbs`` (L,): the skeleton in **grouping order** (``schema_skeleton``), each limb pointing away
  from its part's root; limbs that close a loop are marked ``extra``. The PAF channels ``2j, 2j+1``
  (x, y) belong to ``limbs[j]`` and point from ``limbs[j].src`` to ``limbs[j].dst``.
- ``paf_flip``: how the 2L PAF channels of a flipped image map to the original ones (``None`` when the
  skeleton is not left/right symmetric); ``roots``: one per connected part; BGR drawing colors.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from posekit.errors import SchemaError
from posekit.schema_names import COCO_PERSON_KEYPOINTS, COCO_PERSON_SIGMAS, flip_index_from_names
from posekit.schema_skeleton import (
    Limb,
    PafFlip,
    colors,
    given_halves,
    grouping_order,
    half_body_split,
    paf_flip,
)

logger = logging.getLogger(__name__)

DEFAULT_SIGMA = 0.05
"""OKS sigma used when a schema gives none (a warning is logged); COCO's range is 0.025-0.107."""

_SCHEMA_KEYS = ("name", "keypoints", "skeleton", "flip_pairs", "sigmas", "joint_weights", "root")
_SCHEMA_KEYS += ("virtual", "limb_order", "upper", "lower")


@dataclass(frozen=True)
class KeypointSchema:
    """A validated keypoint schema. Construct directly, or with ``from_yaml`` / ``from_coco`` / ``named``.

    Args:
        name: schema name (free text, used in logs and checkpoints).
        keypoints: K unique keypoint names.
        skeleton: limbs as pairs of names or 0-based indices, in the order given by the user.
        flip_pairs: ``"auto"`` (derive from names), ``None`` (no left/right pairs), or explicit pairs
            of names / 0-based indices.
        sigmas: K OKS sigmas (> 0); default 0.05 each, with a warning.
        joint_weights: K loss weights (>= 0); default 1.0 each.
        root: grouping root keypoint name; default the most connected keypoint.
        virtual: ``{name: [source names]}``: keypoints computed as the mean of their sources, labeled
            only when every source is labeled (e.g. a neck from two shoulders).
        limb_order: ``"bfs"`` (derive grouping order) or ``"given"`` (keep the skeleton's order and
            direction, e.g. to match the PAF channels of published weights; validated).
        upper, lower: the two halves of the body for half-body crops (top-down augmentation),
            keypoint names; default derived from the skeleton (``halves``).

    Derived ``halves``: (upper, lower) keypoint indices, given or the most balanced cut of the
    skeleton into two connected, mirror-closed parts (``schema_skeleton.half_body_split``: COCO's
    0-10 / 11-16), or None when no split makes sense (no skeleton, a hand, several parts).
    """

    name: str
    keypoints: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...] = ()
    flip_pairs: Any = "auto"
    sigmas: tuple[float, ...] | None = None
    joint_weights: tuple[float, ...] | None = None
    root: str | None = None
    virtual: Mapping[str, Sequence[str]] | None = field(default=None, compare=False)
    limb_order: str = "bfs"
    upper: tuple[str, ...] | None = None
    lower: tuple[str, ...] | None = None

    flip_index: tuple[int, ...] = field(init=False)
    limbs: tuple[Limb, ...] = field(init=False)
    roots: tuple[int, ...] = field(init=False)
    paf_flip: PafFlip | None = field(init=False)
    virtual_sources: tuple[tuple[int, tuple[int, ...]], ...] = field(init=False)
    keypoint_colors: tuple[tuple[int, int, int], ...] = field(init=False)
    limb_colors: tuple[tuple[int, int, int], ...] = field(init=False)
    halves: tuple[tuple[int, ...], tuple[int, ...]] | None = field(init=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        keypoints = self._validate_names(self.keypoints)
        set_(self, "keypoints", keypoints)
        k = len(keypoints)
        skeleton = tuple(self._pair(p, f"skeleton[{i}]") for i, p in enumerate(self.skeleton or ()))
        seen: dict[frozenset[int], int] = {}
        for i, (a, b) in enumerate(skeleton):
            if a == b:
                raise SchemaError(f"skeleton[{i}] connects '{keypoints[a]}' to itself")
            key = frozenset((a, b))
            if key in seen:
                raise SchemaError(
                    f"skeleton[{i}] ({keypoints[a]}, {keypoints[b]}) repeats skeleton[{seen[key]}]"
                )
            seen[key] = i
        set_(self, "skeleton", skeleton)
        set_(self, "sigmas", self._per_keypoint("sigmas", self.sigmas, DEFAULT_SIGMA, k, 0.0, True))
        set_(
            self,
            "joint_weights",
            self._per_keypoint("joint_weights", self.joint_weights, 1.0, k, 0.0, False),
        )
        if self.limb_order not in ("bfs", "given"):
            raise SchemaError(f"limb_order must be 'bfs' or 'given', got {self.limb_order!r}")
        if self.root is not None and self.root not in keypoints:
            raise SchemaError(f"root: unknown keypoint name {self.root!r}")
        set_(self, "virtual_sources", self._resolve_virtual())
        set_(
            self,
            "virtual",
            {keypoints[i]: [keypoints[s] for s in src] for i, src in self.virtual_sources},
        )
        flip_index = self._resolve_flip()
        set_(self, "flip_index", flip_index)
        set_(
            self,
            "flip_pairs",
            tuple((keypoints[i], keypoints[j]) for i, j in enumerate(flip_index) if i < j),
        )
        limbs, roots = grouping_order(self.name, keypoints, skeleton, self.root, self.limb_order)
        set_(self, "limbs", limbs)
        set_(self, "roots", roots)
        set_(self, "paf_flip", paf_flip(limbs, flip_index))
        kcol, lcol = colors(keypoints, limbs, flip_index)
        set_(self, "keypoint_colors", kcol)
        set_(self, "limb_colors", lcol)
        if self.upper is None and self.lower is None:
            set_(self, "halves", half_body_split(k, skeleton, flip_index))
        else:
            halves = given_halves(keypoints, self.upper, self.lower, flip_index)
            set_(self, "upper", tuple(keypoints[i] for i in halves[0]))
            set_(self, "lower", tuple(keypoints[i] for i in halves[1]))
            set_(self, "halves", halves)

    # ------------------------------------------------------------------ construction helpers
    @staticmethod
    def _validate_names(names: Any) -> tuple[str, ...]:
        if isinstance(names, str) or not isinstance(names, Sequence) or len(names) == 0:
            raise SchemaError(f"keypoints must be a non-empty list of names, got {names!r}")
        out = tuple(str(n) for n in names)
        dup = sorted({n for n in out if out.count(n) > 1})
        if dup:
            raise SchemaError(f"keypoints: duplicate names {dup}")
        if any(not n.strip() for n in out):
            raise SchemaError("keypoints: empty name")
        return out

    def _index(self, ref: Any, where: str) -> int:
        """Keypoint index of a name or a 0-based integer index, with an error naming ``where``."""
        if isinstance(ref, (bool, float)):
            raise SchemaError(f"{where}: expected a keypoint name or index, got {ref!r}")
        if isinstance(ref, (int, np.integer)):
            if not 0 <= int(ref) < len(self.keypoints):
                raise SchemaError(
                    f"{where}: index {int(ref)} out of range for {len(self.keypoints)} keypoints"
                )
            return int(ref)
        if ref not in self.keypoints:
            raise SchemaError(f"{where}: unknown keypoint name {ref!r}")
        return self.keypoints.index(ref)

    def _pair(self, pair: Any, where: str) -> tuple[int, int]:
        if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise SchemaError(f"{where}: expected a pair of keypoints, got {pair!r}")
        return self._index(pair[0], where), self._index(pair[1], where)

    @staticmethod
    def _per_keypoint(
        key: str, values: Any, default: float, k: int, low: float, strict: bool
    ) -> tuple[float, ...]:
        if values is None:
            if key == "sigmas":
                logger.warning("schema gives no sigmas: using %.3f for every keypoint", default)
            return (default,) * k
        try:
            out = tuple(float(v) for v in values)
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"{key}: expected {k} numbers, got {values!r}") from exc
        if len(out) != k:
            raise SchemaError(f"{key}: expected {k} values (one per keypoint), got {len(out)}")
        bad = [
            i for i, v in enumerate(out) if not np.isfinite(v) or v < low or (strict and v == low)
        ]
        if bad:
            rel = ">" if strict else ">="
            raise SchemaError(f"{key}: values must be finite and {rel} {low}; bad at indices {bad}")
        return out

    def _resolve_virtual(self) -> tuple[tuple[int, tuple[int, ...]], ...]:
        spec = self.virtual or {}
        if not isinstance(spec, Mapping):
            raise SchemaError(f"virtual: expected a mapping name -> sources, got {spec!r}")
        out = []
        for name, src in spec.items():
            where = f"virtual.{name}"
            if isinstance(src, Mapping):
                if set(src) != {"mean_of"}:
                    raise SchemaError(f"{where}: expected {{mean_of: [names]}}, got {dict(src)!r}")
                src = src["mean_of"]
            if isinstance(src, str) or not isinstance(src, Sequence) or not src:
                raise SchemaError(f"{where}: expected a non-empty list of source keypoints")
            idx = self._index(name, where)
            sources = tuple(self._index(s, where) for s in src)
            if idx in sources:
                raise SchemaError(f"{where}: a virtual keypoint cannot be its own source")
            out.append((idx, sources))
        virtual_idx = {i for i, _ in out}
        for idx, sources in out:
            if virtual_idx & set(sources):
                raise SchemaError(
                    f"virtual.{self.keypoints[idx]}: sources must be real keypoints, not virtual ones"
                )
        return tuple(sorted(out))

    def _resolve_flip(self) -> tuple[int, ...]:
        k = len(self.keypoints)
        flip = list(range(k))
        spec = self.flip_pairs
        if spec is None or (isinstance(spec, str) and spec.lower() == "none"):
            return tuple(flip)
        if isinstance(spec, str):
            if spec.lower() != "auto":
                raise SchemaError(
                    f"flip_pairs: expected 'auto', 'none' or a list of pairs, got {spec!r}"
                )
            return flip_index_from_names(self.keypoints)
        for n, pair in enumerate(spec):
            a, b = self._pair(pair, f"flip_pairs[{n}]")
            if a == b:
                raise SchemaError(f"flip_pairs[{n}]: pairs '{self.keypoints[a]}' with itself")
            for x in (a, b):
                if flip[x] != x:
                    raise SchemaError(
                        f"flip_pairs[{n}]: '{self.keypoints[x]}' is already paired with "
                        f"'{self.keypoints[flip[x]]}'; flip pairs must be symmetric and disjoint"
                    )
            flip[a], flip[b] = b, a
        return tuple(flip)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], *, where: str = "schema") -> KeypointSchema:
        """Build from a plain mapping with the YAML keys (``to_dict`` output round-trips)."""
        if not isinstance(spec, Mapping):
            raise SchemaError(f"{where}: expected a mapping, got {type(spec).__name__}")
        unknown = sorted(set(spec) - set(_SCHEMA_KEYS))
        if unknown:
            raise SchemaError(f"{where}: unknown keys {unknown}; allowed: {list(_SCHEMA_KEYS)}")
        for key in ("name", "keypoints"):
            if key not in spec:
                raise SchemaError(f"{where}: missing required key '{key}'")
        try:
            return cls(**dict(spec))
        except SchemaError as exc:
            raise SchemaError(f"{where}: {exc}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> KeypointSchema:
        """Load a schema YAML file (see the README for the format)."""
        path = Path(path)
        try:
            spec = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise SchemaError(f"schema file not found: {path}") from None
        except yaml.YAMLError as exc:
            raise SchemaError(f"{path}: invalid YAML: {exc}") from None
        return cls.from_dict(spec, where=str(path))

    @classmethod
    def from_coco(
        cls,
        category: Mapping[str, Any],
        *,
        skeleton_base: str | int = "auto",
        drop_invalid_limbs: bool = False,
        **overrides: Any,
    ) -> KeypointSchema:
        """Build from a COCO ``categories`` entry (``keypoints`` names + ``skeleton`` index pairs).

        COCO skeletons are 1-based; some datasets write 0-based indices. ``skeleton_base="auto"``
        takes 0-based when an index 0 occurs, else 1-based. When the names are exactly COCO's 17
        person keypoints, COCO's sigmas are used. ``drop_invalid_limbs`` leaves out (with a warning)
        skeleton pairs whose indices are out of range or that repeat or loop on one keypoint,
        instead of raising. ``overrides`` set any constructor argument (``sigmas``, ``root``,
        ``flip_pairs``, ``virtual``, ...).
        """
        where = f"category {category.get('id', '?')} ({category.get('name', '?')})"
        names = category.get("keypoints")
        if not names:
            raise SchemaError(f"{where}: no 'keypoints' list")
        raw = category.get("skeleton") or []
        try:
            pairs = [(int(a), int(b)) for a, b in raw]
        except (TypeError, ValueError):
            raise SchemaError(f"{where}: skeleton must be a list of index pairs") from None
        flat = [i for p in pairs for i in p]
        if skeleton_base == "auto":
            base = 0 if flat and min(flat) == 0 else 1
            if flat and 0 < min(flat) and max(flat) < len(names):
                logger.warning(
                    "%s: skeleton uses neither index 0 nor %d; read as 1-based (COCO). Pass "
                    "skeleton_base=0 if it is 0-based",
                    where,
                    len(names),
                )
        elif skeleton_base in (0, 1):
            base = int(skeleton_base)
        else:
            raise SchemaError(f"skeleton_base must be 'auto', 0 or 1, got {skeleton_base!r}")
        k = len(names)
        bad = [p for p in pairs if not all(base <= i < k + base for i in p)]
        if drop_invalid_limbs:
            seen: set[frozenset[int]] = set()
            for p in pairs:
                if p not in bad and (p[0] == p[1] or frozenset(p) in seen):
                    bad.append(p)
                seen.add(frozenset(p))
            if bad:
                logger.warning("%s: left out the skeleton pairs %s (%d-based)", where, bad, base)
            pairs = [p for p in pairs if p not in bad]
        elif bad:
            raise SchemaError(
                f"{where}: skeleton pairs {bad[:5]} out of range for {k} keypoints ({base}-based)"
            )
        spec: dict[str, Any] = {
            "name": str(category.get("name", "coco")),
            "keypoints": list(names),
            "skeleton": [(a - base, b - base) for a, b in pairs],
        }
        if list(names) == list(COCO_PERSON_KEYPOINTS):
            spec["sigmas"] = list(COCO_PERSON_SIGMAS)
        spec.update(overrides)
        try:
            return cls(**spec)
        except SchemaError as exc:
            raise SchemaError(f"{where}: {exc}") from None

    @classmethod
    def named(cls, name: str) -> KeypointSchema:
        """A built-in schema: ``coco_person``, ``coco_person_neck``, ``openpose18`` (see ``available``)."""
        available = cls.available()
        if name not in available:
            raise SchemaError(f"unknown built-in schema {name!r}; available: {available}")
        text = resources.files("posekit.schemas").joinpath(f"{name}.yaml").read_text()
        return cls.from_dict(yaml.safe_load(text), where=f"built-in schema {name}")

    @staticmethod
    def available() -> list[str]:
        """Names of the built-in schemas."""
        files = resources.files("posekit.schemas").iterdir()
        return sorted(p.name[:-5] for p in files if p.name.endswith(".yaml"))

    @classmethod
    def load(cls, spec: str | Path | KeypointSchema) -> KeypointSchema:
        """A schema from a built-in name, a YAML path, or a schema (returned as is)."""
        if isinstance(spec, KeypointSchema):
            return spec
        text = str(spec)
        if text in cls.available():
            return cls.named(text)
        if text.endswith((".yaml", ".yml")) or Path(text).exists():
            return cls.from_yaml(text)
        raise SchemaError(
            f"schema {text!r} is neither a built-in ({cls.available()}) nor a YAML file"
        )

    # ------------------------------------------------------------------ serialization
    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-able mapping; ``KeypointSchema.from_dict(s.to_dict()) == s``."""
        names = self.keypoints
        out: dict[str, Any] = {
            "name": self.name,
            "keypoints": list(names),
            "skeleton": [[names[a], names[b]] for a, b in self.skeleton],
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "sigmas": list(self.sigmas),
            "joint_weights": list(self.joint_weights),
            "root": self.root,
            "virtual": {k: list(v) for k, v in (self.virtual or {}).items()},
            "limb_order": self.limb_order,
        }
        if self.upper is not None:
            out["upper"], out["lower"] = list(self.upper), list(self.lower or ())
        return out

    def to_yaml(self, path: str | Path) -> None:
        """Write the schema as YAML (readable by ``from_yaml``)."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def coco_category(self, category_id: int = 1) -> dict[str, Any]:
        """COCO ``categories`` entry of the real (non-virtual) keypoints, 1-based skeleton."""
        real = self.real_indices
        pos = {k: i for i, k in enumerate(real)}
        skel = [[pos[a] + 1, pos[b] + 1] for a, b in self.skeleton if a in pos and b in pos]
        return {
            "id": int(category_id),
            "name": self.name,
            "supercategory": self.name,
            "keypoints": [self.keypoints[i] for i in real],
            "skeleton": skel,
        }

    # ------------------------------------------------------------------ properties and helpers
    @property
    def num_keypoints(self) -> int:
        """K, including virtual keypoints."""
        return len(self.keypoints)

    @property
    def num_limbs(self) -> int:
        """L, the number of limbs (PAF channels are 2L)."""
        return len(self.limbs)

    @property
    def real_indices(self) -> tuple[int, ...]:
        """Indices of the keypoints that are not virtual (the ones in COCO files), in order."""
        virtual = {i for i, _ in self.virtual_sources}
        return tuple(i for i in range(self.num_keypoints) if i not in virtual)

    @property
    def real_sigmas(self) -> np.ndarray:
        """OKS sigmas of the real keypoints, ``(K_real,)`` float64 (what COCOeval uses)."""
        return np.asarray(self.sigmas, dtype=np.float64)[list(self.real_indices)]

    def index(self, name: str) -> int:
        """Index of a keypoint name (SchemaError when unknown)."""
        return self._index(name, f"schema {self.name}")

    def source_index(self, source_names: Sequence[str], *, where: str = "dataset") -> np.ndarray:
        """For each real keypoint of this schema, its position in ``source_names``.

        Used to read a file whose keypoint order differs from the schema's. Raises SchemaError
        naming the keypoints that the source lacks.
        """
        src = {n: i for i, n in enumerate(source_names)}
        missing = [self.keypoints[i] for i in self.real_indices if self.keypoints[i] not in src]
        if missing:
            raise SchemaError(
                f"{where}: keypoints {missing} of schema '{self.name}' are not in the file's "
                f"keypoint list {list(source_names)}"
            )
        return np.asarray([src[self.keypoints[i]] for i in self.real_indices], dtype=np.int64)

    def add_virtual(self, keypoints: np.ndarray) -> np.ndarray:
        """Fill the virtual keypoints of ``(N, K, 3)`` x, y, v arrays in place and return them.

        A virtual keypoint is the mean of its sources, with v = the lowest source v (so it is
        unlabeled, v=0, unless every source is labeled).
        """
        for idx, sources in self.virtual_sources:
            src = keypoints[:, list(sources)]
            v = src[..., 2].min(axis=1)
            keypoints[:, idx, :2] = np.where(v[:, None] > 0, src[..., :2].mean(axis=1), 0.0)
            keypoints[:, idx, 2] = v
        return keypoints

    def to_real(self, keypoints: np.ndarray) -> np.ndarray:
        """Drop virtual keypoints: ``(..., K, C) -> (..., K_real, C)``."""
        return keypoints[..., list(self.real_indices), :]

    def flip_keypoints(self, keypoints: np.ndarray, width: float) -> np.ndarray:
        """Mirror ``(..., K, 3)`` keypoints: x -> ``width - x`` and left/right names swapped.

        ``width`` is the mirror axis times two in the pixel convention of ``data.transforms``
        (pixel centers at integer coordinates: ``x' = W - 1 - x`` is ``width = W - 1``).
        """
        out = keypoints[..., list(self.flip_index), :].copy()
        out[..., 0] = np.where(out[..., 2] > 0, width - out[..., 0], out[..., 0])
        return out

    def require_paf_flip(self) -> PafFlip:
        """``paf_flip``, or a SchemaError explaining why the skeleton cannot be mirrored."""
        if self.paf_flip is None:
            raise SchemaError(
                f"schema '{self.name}': its skeleton is not left/right symmetric under flip_index, "
                f"so PAFs of a flipped image cannot be mapped back (flip test needs it)"
            )
        return self.paf_flip

    def describe(self) -> str:
        """Human-readable summary: keypoints, flip pairs, roots and limb order."""
        n = self.keypoints
        lines = [f"schema '{self.name}': {self.num_keypoints} keypoints, {self.num_limbs} limbs"]
        if self.virtual_sources:
            lines.append(
                "  virtual: "
                + ", ".join(
                    f"{n[i]} = mean({', '.join(n[s] for s in src)})"
                    for i, src in self.virtual_sources
                )
            )
        pairs = ", ".join(f"{a}<->{b}" for a, b in self.flip_pairs) or "(none)"
        lines.append(f"  flip pairs: {pairs}")
        lines.append("  roots: " + ", ".join(n[r] for r in self.roots))
        if self.halves is None:
            lines.append("  half-body halves: none (give upper / lower to crop halves)")
        else:
            for label, half in zip(("upper", "lower"), self.halves, strict=True):
                lines.append(f"  {label} half: " + ", ".join(n[i] for i in half))
        lines.append("  limb order (grouping):")
        for j, limb in enumerate(self.limbs):
            tag = "  [extra: closes a loop]" if limb.extra else ""
            lines.append(f"    {j:2d}  {n[limb.src]} -> {n[limb.dst]}{tag}")
        return "\n".join(lines)
