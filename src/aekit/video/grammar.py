"""The caption grammar of the moving-digits clips, and reading the slots back from a caption.

A caption names each digit, the direction it sets off in, and whether it bounces off a wall::

    the digit 7 moves up and to the left
    the digit 3 moves right and bounces while the digit 5 moves down

Two-digit captions name the smaller digit first (the two digits of a clip differ), so every
clip has exactly one right caption.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: the eight directions, as (dx, dy) in image coordinates (x to the right, y downwards)
DIRECTIONS: dict[str, tuple[int, int]] = {
    "up": (0, -1),
    "down": (0, 1),
    "left": (-1, 0),
    "right": (1, 0),
    "up and to the left": (-1, -1),
    "up and to the right": (1, -1),
    "down and to the left": (-1, 1),
    "down and to the right": (1, 1),
}
DIRECTION_NAMES: tuple[str, ...] = tuple(DIRECTIONS)

# longer direction phrases first, so "up and to the left" is not read as "up"
_DIR = "|".join(sorted(map(re.escape, DIRECTIONS), key=len, reverse=True))
_CLAUSE = rf"the digit (\d) moves ({_DIR})( and bounces)?"
_CAPTION = re.compile(rf"^{_CLAUSE}(?: while {_CLAUSE})?$")


@dataclass(frozen=True)
class Slot:
    """What a caption says about one digit."""

    digit: int
    direction: str  # a key of DIRECTIONS
    bounces: bool = False

    def phrase(self) -> str:
        return f"the digit {self.digit} moves {self.direction}" + (" and bounces" if self.bounces else "")


def make_caption(slots: Sequence[Slot]) -> str:
    """The caption of one or two digits' motion (the smaller digit first)."""
    if not 1 <= len(slots) <= 2:
        raise ValueError(f"a caption describes one or two digits, got {len(slots)}")
    for s in slots:
        if s.direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {s.direction!r}; known: {', '.join(DIRECTION_NAMES)}")
    return " while ".join(s.phrase() for s in sorted(slots, key=lambda s: s.digit))


def parse_caption(caption: str) -> list[Slot] | None:
    """The slots of a caption that follows the grammar, else None (extra spaces are ignored)."""
    m = _CAPTION.match(" ".join(str(caption).lower().split()))
    if m is None:
        return None
    g = m.groups()
    slots = [Slot(int(g[0]), g[1], bool(g[2]))]
    if g[3] is not None:
        slots.append(Slot(int(g[3]), g[4], bool(g[5])))
    return slots


def slot_accuracy(predicted: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """How often the predicted captions get each slot of the reference captions right.

    Slots are compared in caption order (the grammar fixes the order). A reference digit that the
    prediction leaves out, or a prediction outside the grammar, counts as wrong on every slot.

    Returns
    -------
    dict with ``digit_accuracy``, ``direction_accuracy``, ``bounce_accuracy`` (over all digits of
    all references), ``count_accuracy`` (the number of digits is right) and ``parse_rate`` (share
    of predictions that follow the grammar).
    """
    if len(predicted) != len(references):
        raise ValueError(f"{len(predicted)} predictions for {len(references)} references")
    n_slots = digit = direction = bounce = count = parsed = 0
    for p, r in zip(predicted, references):
        ref = parse_caption(r)
        if ref is None:
            raise ValueError(f"reference caption {r!r} does not follow the moving-digits grammar")
        got = parse_caption(p)
        parsed += got is not None
        got = got or []
        count += len(got) == len(ref)
        for i, s in enumerate(ref):
            n_slots += 1
            if i < len(got):
                digit += got[i].digit == s.digit
                direction += got[i].direction == s.direction
                bounce += got[i].bounces == s.bounces
    n = max(len(references), 1)
    k = max(n_slots, 1)
    return {
        "digit_accuracy": digit / k,
        "direction_accuracy": direction / k,
        "bounce_accuracy": bounce / k,
        "count_accuracy": count / n,
        "parse_rate": parsed / n,
    }
