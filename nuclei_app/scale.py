"""Nucleus scale: bring an image to the nucleus diameter the network was trained at, and back.

The network is trained with every image rescaled so that its nuclei have one canonical
diameter (``scale.diameter`` in ``nuclei.json``). At inference the image is rescaled the same
way, predicted, and the probabilities are resized back to the input's own size before
post-processing, so outputs always match the input pixel for pixel and outlines keep
sub-pixel smoothness even when the network ran at a third of the resolution.

Training (``train/data.py``) and inference call the same ``rescale_image``, so the network
sees the same resampling in both.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import ndimage, sparse

from .canvas import Box
from .channelwise import channel_mean

# Resampling more than this much either way is refused as a typo: a 17 px network would
# look at a 2 px or 400 px nucleus.
MIN_FACTOR, MAX_FACTOR = 1 / 8, 4.0


def scale_factor(diameter: float | None, canonical: float | None) -> float:
    """How much to resize the image so nuclei of ``diameter`` px become ``canonical`` px."""
    if not diameter or not canonical:
        return 1.0
    return float(np.clip(canonical / diameter, MIN_FACTOR, MAX_FACTOR))


def scaled_shape(shape: tuple[int, ...], factor: float) -> tuple[int, int]:
    return max(1, int(round(shape[0] * factor))), max(1, int(round(shape[1] * factor)))


def rescale_image(image: np.ndarray, factor: float) -> np.ndarray:
    """(H, W[, C]) float image resized by ``factor`` (linear; smoothed first when shrinking
    so that fine texture does not alias into false edges)."""
    if abs(factor - 1.0) < 1e-3:
        return image
    return resize_image(image, scaled_shape(image.shape, factor))


def resize_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W[, C]) float image to ``shape``: linear interpolation between pixel centres, edges
    held (``ndimage.zoom(order=1, mode="nearest", grid_mode=True)``'s values, to float32
    rounding), after a Gaussian anti-aliasing where it shrinks, with sigma ~ (1/zoom - 1) / 2 as
    skimage.transform.resize does (``ndimage.gaussian_filter(mode="mirror")``'s values).

    Enlarging: two 1-D linear passes, rows then columns, all channels at once (1.5x faster
    than the zoom, which walks a spline machinery over every output pixel). Shrinking: the
    smoothing and the interpolation along each axis are one sparse matrix (``resampling_matrix``)
    applied to all columns at once: 512x512x3 -> 330x330 in 3.4 ms against 13.6 ms for the
    Gaussian filter and the two passes (one run, one after the other), which cost more than
    the interpolation itself."""
    image = np.asarray(image, np.float32)
    shape = (int(shape[0]), int(shape[1]))
    zoom = (shape[0] / image.shape[0], shape[1] / image.shape[1])
    if min(zoom) < 1.0:
        return _resample(image, shape)
    rows = (np.arange(shape[0]) + 0.5) / zoom[0] - 0.5
    columns = (np.arange(shape[1]) + 0.5) / zoom[1] - 0.5
    return linear_along(linear_along(image, rows, axis=0), columns, axis=1)


def _resample(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``resize_image`` as two sparse products: rows, then columns (moved to the front)."""
    height, width = image.shape[:2]
    rows_done = resampling_matrix(height, shape[0]) @ image.reshape(height, -1)
    across = rows_done.reshape(shape[0], width, -1).transpose(1, 0, 2).reshape(width, -1)
    both = (resampling_matrix(width, shape[1]) @ across).reshape(shape[1], shape[0], -1).transpose(1, 0, 2)
    return np.ascontiguousarray(both, dtype=np.float32).reshape(shape + image.shape[2:])


@lru_cache(maxsize=16)
def resampling_matrix(length: int, new_length: int) -> sparse.csr_matrix:
    """(new_length, length) float32 matrix of ``resize_image`` along one axis: each output
    pixel is the linear interpolation, at its centre's position in the input, between two
    rows of the Gaussian filter (mirrored at the edges as ``ndimage``'s mode "mirror"); no
    filter where the axis is not shrunk. Cached: a batch's images mostly share their sizes."""
    zoom = new_length / length
    sigma = max(0.0, (1.0 / zoom - 1.0) / 2.0)
    taps = gaussian_taps(sigma)
    offsets = np.arange(len(taps)) - len(taps) // 2
    position = np.clip((np.arange(new_length) + 0.5) / zoom - 0.5, 0, length - 1)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, length - 1)
    weight = (position - low).astype(np.float32).astype(np.float64)
    columns = np.concatenate([_mirrored(low[:, None] + offsets, length), _mirrored(high[:, None] + offsets, length)], 1)
    values = np.concatenate([(1 - weight)[:, None] * taps, weight[:, None] * taps], 1)
    rows = np.repeat(np.arange(new_length), columns.shape[1])
    # Repeated (row, column) pairs are summed: an edge pixel's mirrored taps, low == high.
    return sparse.csr_matrix((values.ravel(), (rows, columns.ravel())), shape=(new_length, length), dtype=np.float32)


def gaussian_taps(sigma: float) -> np.ndarray:
    """``ndimage.gaussian_filter``'s kernel: radius int(4 sigma + 0.5), weights summing to 1."""
    radius = int(4.0 * sigma + 0.5)
    if sigma <= 0 or radius == 0:
        return np.ones(1)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 / sigma**2 * x**2)
    return taps / taps.sum()


def _mirrored(index: np.ndarray, length: int) -> np.ndarray:
    """Indices reflected about the edge pixels' centres (d c b | a b c d | c b a)."""
    if length == 1:
        return np.zeros_like(index)
    period = 2 * (length - 1)
    index = np.abs(index) % period
    return np.where(index >= length, period - index, index)


def linear_along(array: np.ndarray, coordinates: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation along ``axis`` at ``coordinates``, clamped to the edges
    (``ndimage``'s order 1 with mode "nearest")."""
    coordinates = np.clip(coordinates, 0, array.shape[axis] - 1)
    low = np.floor(coordinates).astype(np.intp)
    high = np.minimum(low + 1, array.shape[axis] - 1)
    shape = [1] * array.ndim
    shape[axis] = -1
    weight = (coordinates - low).astype(np.float32).reshape(shape)
    return (np.take(array, low, axis=axis) * (1 - weight) + np.take(array, high, axis=axis) * weight).astype(np.float32)


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label image (ids are kept, never blended)."""
    if labels.shape[:2] == tuple(shape):
        return labels
    zoom = (shape[0] / labels.shape[0], shape[1] / labels.shape[1])
    return _fit(ndimage.zoom(labels, zoom, order=0, mode="nearest", grid_mode=True), shape)


def _fit(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """ndimage.zoom can be a pixel off the rounded size: crop or edge-pad to exactly ``shape``."""
    array = array[: shape[0], : shape[1]]
    pad_h, pad_w = shape[0] - array.shape[0], shape[1] - array.shape[1]
    if pad_h or pad_w:
        pads = ((0, pad_h), (0, pad_w)) + ((0, 0),) * (array.ndim - 2)
        array = np.pad(array, pads, mode="edge")
    return array


def equivalent_diameters(labels: np.ndarray) -> np.ndarray:
    """Equivalent diameter (sqrt(4 area / pi)) of each labelled object, ids without pixels left out."""
    areas = np.bincount(labels.ravel())[1:]
    return np.sqrt(4.0 * areas[areas > 0] / math.pi)


def median_diameter(labels: np.ndarray) -> float | None:
    """Median equivalent diameter of the labelled objects; None if none."""
    diameters = equivalent_diameters(labels)
    return float(np.median(diameters)) if diameters.size else None


# Candidate diameters for the estimator, px: DSB2018's nuclei are 10-50 px across, users'
# 8-120 px; the grid leaves room beyond both ends (steps of 21 %, refined by a parabola).
ESTIMATOR_DIAMETERS = tuple(float(d) for d in np.geomspace(6.0, 180.0, 19))
# The estimator's peak sits above the median ground-truth diameter by this factor (DSB2018
# training split, measured by ``python -m benchmarks.diameter``); dividing by it removes the bias.
ESTIMATOR_BIAS = 1.154
ESTIMATOR_MAX_SIDE = 1024  # a crop this large (``content_crop``) holds plenty of nuclei and bounds the cost


def estimate_diameter(network_input: np.ndarray) -> float:
    """Typical nucleus diameter (px) of a preprocessed image (nuclei bright), without the network.

    Scale-normalised Laplacian of Gaussian: a bright disk of diameter d answers most strongly
    at sigma = d / (2 sqrt 2). The mean squared positive response over the image, as a function
    of sigma, peaks at the scale of the objects that cover the image: the nuclei. Large sigmas
    are computed on a pyramid level where sigma is 1.5-3 px, which keeps them cheap.
    """
    grey = content_crop(np.asarray(network_input, np.float32), ESTIMATOR_MAX_SIDE)
    grey = channel_mean(grey) if grey.ndim == 3 else grey
    pyramid = _pyramid(grey)
    energies = np.array([_log_energy(pyramid, d) for d in ESTIMATOR_DIAMETERS])
    best = int(np.argmax(energies))
    return float(_refine_peak(np.log(ESTIMATOR_DIAMETERS), energies, best)) / ESTIMATOR_BIAS


def _pyramid(grey: np.ndarray) -> list[np.ndarray]:
    """Level k is the image shrunk 2**k times (Gaussian-smoothed before each halving)."""
    levels = [grey]
    while min(levels[-1].shape) >= 32:
        levels.append(ndimage.gaussian_filter(levels[-1], 1.0, mode="reflect")[::2, ::2])
    return levels


def _log_energy(pyramid: list[np.ndarray], diameter: float) -> float:
    sigma = diameter / (2.0 * math.sqrt(2.0))
    level = min(len(pyramid) - 1, max(0, int(math.floor(math.log2(sigma / 1.5)))))
    image = pyramid[level]
    local_sigma = sigma / 2 ** level
    if min(image.shape) < 4 * local_sigma:
        return 0.0
    response = -(local_sigma ** 2) * ndimage.gaussian_laplace(image, local_sigma, mode="reflect")
    return float(np.mean(np.maximum(response, 0.0) ** 2))


def _refine_peak(log_diameters: np.ndarray, energies: np.ndarray, best: int) -> float:
    """Parabola through the peak and its neighbours: finer than the grid's 16 % steps."""
    if 0 < best < len(energies) - 1:
        left, centre, right = energies[best - 1:best + 2]
        curvature = left - 2 * centre + right
        if curvature < 0:
            offset = 0.5 * (left - right) / curvature
            step = log_diameters[1] - log_diameters[0]
            return math.exp(log_diameters[best] + float(np.clip(offset, -0.5, 0.5)) * step)
    return math.exp(log_diameters[best])


def centre_corner(shape: tuple[int, ...], side: int, box: Box | None = None) -> tuple[int, int]:
    """(top, left) of the ``side`` px window centred on the image, or on ``box`` in it."""
    box = box or Box(0, shape[0], 0, shape[1])
    return (int(np.clip((box.top + box.bottom - side) // 2, 0, max(0, shape[0] - side))),
            int(np.clip((box.left + box.right - side) // 2, 0, max(0, shape[1] - side))))


# The automatic diameter looks at a window of the image (the estimator's crop, each size
# probe's crop): the centre, unless the centre is background, with less than this share of
# the signal of the busiest window. A tiling or a slide can be dark in the middle: on a 2x2
# tiling of a dim embryo field the small probes saw the black junction of four tiles' corners
# (share 0.00-0.01), found no nuclei, and the image was segmented at 1.7x its nuclei's size.
# Only an empty centre moves: at 0.5, a small probe on a validation image enlarged x3 (130 px
# nuclei, its centre's share 0.13) moved onto one nucleus, read its texture as nuclei, and the
# image scored 0.01 instead of 0.68; at 0.05 no validation image's diameter changes.
CENTRE_SIGNAL_SHARE = 0.05
# The busiest window is looked for on a grid of this many steps per window side.
WINDOW_STEPS = 8


def content_crop(image: np.ndarray, side: int) -> np.ndarray:
    """The ``side`` px crop the automatic diameter looks at (``content_corner``) of an
    image's network input: of its field of view alone, where it lies in a blank canvas
    (``pipeline.NetworkInput.field_image``), whose edges would read as a nucleus its size."""
    top, left = content_corner(image, side, None)
    return image[top:top + side, left:left + side]


def content_corner(image: np.ndarray, side: int, field: Box | None = None) -> tuple[int, int]:
    """(top, left) of the ``side`` px window for the automatic diameter in ``image`` (network
    input, (H, W[, C]), nuclei bright): the window centred on the ``field`` of view (None: the
    whole image; on an image pasted onto a canvas, the canvas is the network's background),
    or, where its mean is under ``CENTRE_SIGNAL_SHARE`` of the brightest window's, the
    brightest window on a grid of ``side / WINDOW_STEPS`` px cells."""
    height, width = image.shape[:2]
    centre = centre_corner((height, width), side, field)
    if side >= height and side >= width:
        return centre
    cell = max(1, side // WINDOW_STEPS)
    means = _cell_means(image, cell)
    span_y, span_x = min(means.shape[0], -(-side // cell)), min(means.shape[1], -(-side // cell))
    sums = _window_sums(means, span_y, span_x)
    top, left = centre
    centre_signal = float(image[top:top + side, left:left + side].mean())
    best = np.unravel_index(int(np.argmax(sums)), sums.shape)
    best_signal = float(sums[best]) / (span_y * span_x)
    if centre_signal >= CENTRE_SIGNAL_SHARE * best_signal:
        return centre
    return min(int(best[0]) * cell, max(0, height - side)), min(int(best[1]) * cell, max(0, width - side))


def _cell_means(image: np.ndarray, cell: int) -> np.ndarray:
    """Mean of each ``cell`` x ``cell`` square (over channels too); the ragged edge's partial
    cells are dropped, or kept whole where the image is narrower than a cell."""
    rows, columns = max(1, image.shape[0] // cell), max(1, image.shape[1] // cell)
    height, width = min(image.shape[0], rows * cell), min(image.shape[1], columns * cell)
    part = np.asarray(image[:height, :width], np.float32)
    part = part.mean(axis=-1) if part.ndim == 3 else part
    return part.reshape(rows, height // rows, columns, width // columns).mean(axis=(1, 3))


def _window_sums(means: np.ndarray, span_y: int, span_x: int) -> np.ndarray:
    """Sum of every ``span_y`` x ``span_x`` group of cells, by a summed-area table."""
    table = np.pad(means.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return (table[span_y:, span_x:] - table[:-span_y, span_x:] - table[span_y:, :-span_x]
            + table[:-span_y, :-span_x])
