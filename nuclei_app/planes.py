"""Which plane of a Z-stack is segmented: one by number, the sharpest, or their maximum.

A 2-D network sees one plane. The first (the default, as before) is often above the cells
and out of focus; the sharpest plane is the one a microscopist would pick by eye; the
maximum-intensity projection shows every nucleus of a thick sample at its brightest (and
merges nuclei that lie above one another: the price of a 2-D count).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

FIRST = 0
FOCUS = "focus"
MAX = "max"
ZChoice = int | str


def parse_z_plane(text: str | int) -> ZChoice:
    """'3' -> 3, 'max', 'focus' (any case); ValueError says what is accepted."""
    value = str(text).strip().lower()
    if value in (FOCUS, MAX):
        return value
    if value.isdigit():
        return int(value)
    raise ValueError(f"--z-plane must be a plane number from 0, '{FOCUS}' (the sharpest plane) or '{MAX}' "
                     f"(maximum-intensity projection), got {text!r}")


def sharpness(plane: np.ndarray) -> float:
    """Variance of the Laplacian over the plane (channels averaged): high where edges are
    crisp, low where blur has smoothed them (a standard autofocus measure)."""
    grey = plane.astype(np.float32)
    if grey.ndim == 3:
        grey = grey.mean(axis=-1)
    return float(np.var(ndimage.laplace(grey)))


def sharpest(planes: np.ndarray) -> int:
    """Index of the sharpest of ``planes`` (Z first)."""
    return int(np.argmax([sharpness(plane) for plane in planes]))


# Said where the first plane was segmented by default.
OTHER_PLANES = ("another Z plane, the sharpest or their maximum projection can be chosen (--z-plane N, focus or max; "
                "the app's Z plane setting)")


def choose_plane(stack: np.ndarray, choice: ZChoice, name: str) -> tuple[np.ndarray, str]:
    """``stack`` (Z first) -> the plane to segment and a note saying which it is."""
    count = stack.shape[0]
    if choice == MAX:
        return stack.max(axis=0), plane_note(count, MAX)
    if choice == FOCUS:
        index = sharpest(stack)
        return stack[index], plane_note(count, FOCUS, index)
    return stack[checked_index(choice, count, name)], plane_note(count, choice)


def plane_note(count: int, choice: ZChoice, sharpest_index: int | None = None, judged_on: str = "") -> str:
    """What the image's line says about the plane of a stack of ``count`` Z planes segmented."""
    stack = f"a stack of {count} Z planes"
    if choice == MAX:
        return f"{stack}: their maximum-intensity projection is segmented"
    if choice == FOCUS:
        return f"{stack}: plane {sharpest_index}, the sharpest{judged_on}, is segmented"
    if choice == FIRST:
        return f"{stack}: the first is segmented; {OTHER_PLANES}"
    return f"{stack}: plane {choice} is segmented"


def checked_index(choice: int, count: int, name: str) -> int:
    if choice >= count:
        from .imageio import ImageReadError

        raise ImageReadError(name, f"--z-plane {choice} is past its last plane: it has {count} Z planes "
                                   f"(0 to {count - 1}).")
    return choice
