"""Which plane of a Z-stack is segmented: one by number, the sharpest, or their maximum.

A 2-D network sees one plane. The first (the default, as before) is often above the cells
and out of focus; the sharpest plane is the one a microscopist would pick by eye; the
maximum-intensity projection shows every nucleus of a thick sample at its brightest (and
merges nuclei that lie above one another: the price of a 2-D count).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .channels import ALL_CHANNELS, AUTO, choose_channel

FOCUS = "focus"
MAX = "max"
ZChoice = int | str | None  # None: the first plane, by default (said with how to choose another)


@dataclass(frozen=True)
class PlaneRequest:
    """Which plane of a Z-stack to segment (``z``), and the channel that will be segmented
    (``--channel``: 'auto', 'all' or an index), on which the sharpest plane is judged: a
    bright, sharp cytoplasm or speckle channel must not choose the nuclei's plane."""
    z: ZChoice = None
    channel: int | str = AUTO


def parse_z_plane(text: str | int) -> int | str:
    """'3' -> 3, 'max', 'focus' (any case); ValueError says what is accepted."""
    value = str(text).strip().lower()
    if value in (FOCUS, MAX):
        return value
    if value.isdigit():
        return int(value)
    raise ValueError(f"--z-plane must be a plane number from 0, '{FOCUS}' (the sharpest plane) or '{MAX}' "
                     f"(maximum-intensity projection), got {text!r}")


def sharpness(plane: np.ndarray) -> float:
    """Variance of the Laplacian over a (Y, X) plane: high where edges are crisp, low where
    blur has smoothed them (a standard autofocus measure)."""
    return float(np.var(ndimage.laplace(plane.astype(np.float32))))


def sharpest(planes: np.ndarray) -> int:
    """Index of the sharpest of ``planes`` (Z, Y, X)."""
    return int(np.argmax([sharpness(plane) for plane in planes]))


def judged_channel(stack: np.ndarray, channel: int | str) -> int | None:
    """The channel of a (Z, Y, X, C) stack the sharpest plane is judged on: the one asked,
    or the nuclear channel ``channels.choose_channel`` finds on the maximum projection; None
    where all are used (grey, H&E or brightfield colours, --channel all): their mean."""
    count = stack.shape[-1]
    if count == 1:
        return 0
    if isinstance(channel, int):
        return channel if channel < count else None  # past the last: the channel check says so later
    if channel == ALL_CHANNELS:
        return None
    chosen = choose_channel(stack.max(axis=0))
    return chosen if isinstance(chosen, int) else None


def focus_planes(stack: np.ndarray, channel: int | str) -> tuple[np.ndarray, str]:
    """(Z, Y, X) planes to judge sharpness on, and which channel they are ('' for one)."""
    index = judged_channel(stack, channel)
    if index is None:
        return stack.mean(axis=-1), " (judged on all channels)"
    return stack[..., index], f" (judged on channel {index})" if stack.shape[-1] > 1 else ""


# Said where the first plane was segmented by default.
OTHER_PLANES = ("another Z plane, the sharpest or their maximum projection can be chosen (--z-plane N, focus or max; "
                "the app's Z plane setting)")


def choose_plane(stack: np.ndarray, request: PlaneRequest, name: str) -> tuple[np.ndarray, str]:
    """``stack`` (Z, Y, X, C) -> the (Y, X, C) plane to segment and a note saying which it is."""
    count = stack.shape[0]
    if request.z == MAX:
        return stack.max(axis=0), plane_note(count, MAX)
    if request.z == FOCUS:
        planes, judged_on = focus_planes(stack, request.channel)
        index = sharpest(planes)
        return stack[index], plane_note(count, FOCUS, index, judged_on)
    z = request.z or 0
    return stack[checked_index(z, count, name)], plane_note(count, request.z)


def checked_index(choice: int, count: int, name: str) -> int:
    if choice >= count:
        from .imageio import ImageReadError

        raise ImageReadError(name, f"plane {choice} was asked (--z-plane {choice}), past its last: it has {count} "
                                   f"Z planes (0 to {count - 1}).")
    return choice


def plane_note(count: int, choice: ZChoice, sharpest_index: int | None = None, judged_on: str = "") -> str:
    """What the image's line says about the plane of a stack of ``count`` Z planes segmented."""
    stack = f"a stack of {count} Z planes"
    if choice == MAX:
        return f"{stack}: their maximum-intensity projection is segmented"
    if choice == FOCUS:
        return f"{stack}: plane {sharpest_index}, the sharpest{judged_on}, is segmented"
    if choice is None:
        return f"{stack}: the first is segmented; {OTHER_PLANES}"
    return f"{stack}: plane {choice} is segmented"


def no_stack_note(request: PlaneRequest) -> str | None:
    """For an image that is no Z-stack: a plane number past the first asked of it is noted
    (the image itself is segmented); focus and max of one plane are that plane."""
    if isinstance(request.z, int) and request.z > 0:
        return f"no Z planes: --z-plane {request.z} does not apply, the image itself is segmented"
    return None
