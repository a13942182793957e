"""Keypoint names: left/right pairs found from names, and the built-in COCO person constants.

``flip_index_from_names`` pairs ``left_x``/``right_x``, ``l_x``/``r_x``, ``x_l``/``x_r``, camelCase
suffixes (``eyeL``/``eyeR``, ``forelegL1``/``forelegR1``) and horse anatomy's ``near``/``off``
(``Nearknee``/``Offknee``), keeping the case of the side word; a single letter only counts as a
side at a token boundary (so ``rear`` holds no side).
"""

from __future__ import annotations

import re

from posekit.errors import SchemaError

__all__ = ["COCO_PERSON_KEYPOINTS", "COCO_PERSON_SIGMAS", "flip_index_from_names"]

# Side words: lower-case form -> mirror. Single letters only count at a token boundary.
_SIDE_WORDS = {"left": "right", "right": "left", "near": "off", "off": "near", "l": "r", "r": "l"}
_SIDE_RE = re.compile(r"left|right|near|off|l|r", re.IGNORECASE)
_SEPARATORS = "_-. "


def _side_boundary(name: str, start: int, end: int) -> bool:
    """True when ``name[start:end]`` is a whole token (separator, digit, camelCase or string end)."""

    def _cut(i: int, j: int) -> bool:  # is there a token border between chars i and j?
        if i < 0 or j >= len(name):
            return True
        a, b = name[i], name[j]
        return (
            a in _SEPARATORS
            or b in _SEPARATORS
            or a.isdigit() != b.isdigit()
            or (a.islower() and b.isupper())
        )

    word = name[start:end]
    if not _cut(start - 1, start):
        # 'eyeL' (camel suffix) and 'L_eye' are tokens; 'rear' contains no side token.
        return False
    if len(word) > 1:
        return True  # 'Nearknee', 'leftear': whole side words may run into the next word
    return _cut(end - 1, end)


def _swap_case(word: str) -> str:
    mirror = _SIDE_WORDS[word.lower()]
    if word.isupper():
        return mirror.upper()
    if word[0].isupper():
        return mirror.capitalize()
    return mirror


def flip_index_from_names(names: tuple[str, ...]) -> tuple[int, ...]:
    """Flip permutation (K,) derived from the names: ``flip[i]`` is the mirror of keypoint ``i``
    (itself when it has none). SchemaError when a mirror is ambiguous or not symmetric."""
    index = {n: i for i, n in enumerate(names)}
    flip = list(range(len(names)))
    for i, name in enumerate(names):
        matches = [m for m in _SIDE_RE.finditer(name) if _side_boundary(name, m.start(), m.end())]
        candidates = set()
        for m in matches:
            cand = name[: m.start()] + _swap_case(m.group()) + name[m.end() :]
            if cand in index and cand != name:
                candidates.add(cand)
        if len(candidates) > 1:
            raise SchemaError(
                f"flip_pairs: cannot tell the mirror of '{name}' from its name "
                f"(candidates {sorted(candidates)}); give flip_pairs explicitly"
            )
        if candidates:
            flip[i] = index[candidates.pop()]
    for i, j in enumerate(flip):
        if flip[j] != i:
            raise SchemaError(
                f"flip_pairs: derived pairs are not symmetric: '{names[i]}' -> '{names[j]}' but "
                f"'{names[j]}' -> '{names[flip[j]]}'; give flip_pairs explicitly"
            )
    return tuple(flip)


COCO_PERSON_KEYPOINTS = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
# COCO keypoint evaluation sigmas (pycocotools cocoeval.py, Ronchi & Perona 2017).
COCO_PERSON_SIGMAS = (
    0.026,
    0.025,
    0.025,
    0.035,
    0.035,
    0.079,
    0.079,
    0.072,
    0.072,
    0.062,
    0.062,
    0.107,
    0.107,
    0.087,
    0.087,
    0.089,
    0.089,
)
