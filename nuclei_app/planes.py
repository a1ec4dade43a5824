"""Which plane of a Z-stack is segmented: one by number, the sharpest, or their maximum.

A 2-D network sees one plane. The first (the default, as before) is often above the cells
and out of focus; the sharpest plane is the one a microscopist would pick by eye; the
maximum-intensity projection shows every nucleus of a thick sample at its brightest (and
merges nuclei that lie above one another: the price of a 2-D count).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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
    if value.isdecimal():
        return int(value)
    raise ValueError(f"must be a plane number from 0, '{FOCUS}' (the sharpest plane) or '{MAX}' "
                     f"(maximum-intensity projection), got {text!r}")


def sharpness(plane: np.ndarray) -> float:
    """Variance of the Laplacian over a (Y, X) plane: high where edges are crisp, low where
    blur has smoothed them (a standard autofocus measure)."""
    return float(np.var(ndimage.laplace(plane.astype(np.float32))))


PlaneReader = Callable[[int], np.ndarray]  # Z index -> that plane, (Y, X, C), as stored


def resolve(request: PlaneRequest, count: int, read_plane: PlaneReader, window: tuple[int, int] | None = None
            ) -> tuple[list[int], str]:
    """The Z planes of a stack of ``count`` to read (their maximum where several) and the note
    saying which. ``read_plane`` reads one plane (the sharpest is judged on what it gives:
    ``window``, (rows, columns), where that is a central part only). Planes are read one at
    a time: a stack never needs to fit in memory whole. ValueError for a plane past the last."""
    z = request.z
    if z is None:
        return [0], plane_note(count, None)
    if z == MAX:
        return list(range(count)), plane_note(count, MAX)
    if z == FOCUS:
        index, judged, channels = sharpest_plane(count, read_plane, request.channel)
        return [index], plane_note(count, FOCUS, index, judged_text(judged, channels, window))
    if z >= count:
        raise ValueError(f"the stack has {count} Z planes (0 to {count - 1}): --z-plane {z} is past the last.")
    return [z], plane_note(count, z)


def sharpest_plane(count: int, read_plane: PlaneReader, channel: int | str) -> tuple[int, int | None, int]:
    """(index of the sharpest plane, the channel judged on or None for their mean, channels):
    every channel's sharpness is scored in one pass, and the channel is chosen on the
    maximum projection built on the way (``judged_channel``)."""
    scores, projection = [], None
    for z in range(count):
        plane = read_plane(z).astype(np.float32)
        projection = plane if projection is None else np.maximum(projection, plane, out=projection)
        scores.append([sharpness(plane[..., c]) for c in range(plane.shape[-1])] + [sharpness(plane.mean(axis=-1))])
    judged = judged_channel(projection, channel)
    column = np.asarray(scores)[:, -1 if judged is None else judged]
    # Rounded before the choice: every Dask worker that opens the file judges it again, and
    # float sums on other processors must not turn a near tie into another plane.
    rounded = np.round(column / max(column.max(), 1e-30), 6)
    return int(np.argmax(rounded)), judged, projection.shape[-1]


def judged_channel(projection: np.ndarray, channel: int | str) -> int | None:
    """The channel of a (Y, X, C) maximum projection the sharpest plane is judged on: the one
    asked, or the nuclear channel ``channels.choose_channel`` finds; None where all are
    used (grey, H&E or brightfield colours, --channel all): their mean."""
    count = projection.shape[-1]
    if count == 1:
        return 0
    if isinstance(channel, int):
        return channel if channel < count else None  # past the last: the channel check says so later
    if channel == ALL_CHANNELS:
        return None
    chosen = choose_channel(projection)
    return chosen if isinstance(chosen, int) else None


def judged_text(judged: int | None, channels: int, window: tuple[int, int] | None = None) -> str:
    """' (judged on channel 1, on its central 1024x1024 px)', or '' for a one-channel plane
    judged whole."""
    parts = [] if channels == 1 else ["judged on all channels" if judged is None else f"judged on channel {judged}"]
    if window:
        parts.append(f"{'on' if parts else 'judged on'} its central {window[1]}x{window[0]} px")
    return f" ({', '.join(parts)})" if parts else ""


def read_planes(read_plane: PlaneReader, planes: list[int]) -> np.ndarray:
    """One plane, or the running maximum of several (one plane's memory more, not Z's)."""
    if len(planes) == 1:
        return read_plane(planes[0])
    result = np.array(read_plane(planes[0]))  # a copy: a reader may give views of its source
    for z in planes[1:]:
        np.maximum(result, read_plane(z), out=result)
    return result


# Said where the first plane was segmented by default.
# The advice in a stack's note, as the command line takes it (the app says it its own way).
OTHER_PLANES = "another Z plane, the sharpest or their maximum projection can be chosen (--z-plane N, focus or max)"


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
    """For an image with no Z planes: a plane number past 0 does not apply (its first plane,
    or the image, is segmented). The sharpest plane or the maximum of one plane is that plane:
    nothing to say (a user test: `--z-plane focus` on a folder noted it on every 2-D image;
    a file's other planes, time points or pages, have their own note)."""
    if not isinstance(request.z, int) or request.z == 0:
        return None
    return f"no Z planes in the file: --z-plane {request.z} does not apply"
