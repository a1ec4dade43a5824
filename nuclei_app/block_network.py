"""The network's side of block-wise segmentation: what is decided once per image, and the
segmenter of one block.

Each block computes its part of the whole image's network input exactly (same sample
points, same pooling phase: ``NetworkGrid``), so that away from its edges a block's
probabilities are the whole image's, and block-wise labels match whole-image labels
(matched IoU 0.999 on synthetic nuclei) rather than merely resemble them. ``BlockJob`` is
all a block needs besides its pixels: cluster workers get it (``cluster_blocks``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .canvas import Box
from .channels import ALL_CHANNELS, network_rgb
from .config import PostprocessSettings
from .inference import Stretch, predict_preprocessed
from .model import NucleiModel
from .pipeline import Prediction, inference_for, labels_for
from .scale import linear_along, scaled_shape
from .stitching import Block, Segmenter, objects_to_keep

@dataclass(frozen=True)
class ImagePlan:
    """What is decided once for the whole image, so that every block is segmented alike."""
    channel: int | str
    stretch: Stretch
    diameter: float | None   # px; None: the model has no scale and runs at the image's own
    diameter_source: str     # as Prediction.diameter_source
    factor: float            # network resampling, the same for every block
    margin: int              # px of context on each side of a core
    core: int                # core side, px
    content: Box | None = None  # outside it, a blank canvas: the network's background


@dataclass(frozen=True)
class BlockJob:
    """What segmenting any block of an image takes besides its pixels (sent to cluster workers)."""
    plan: ImagePlan
    settings: PostprocessSettings
    tta: bool | None
    height: int
    width: int


@dataclass
class ScaleCheck:
    """The pipeline's check of an estimated scale, gathered block by block: the diameters
    (sqrt(4 area / pi), as ``scale.median_diameter``) of the nuclei found with the model's
    tuned settings, not the caller's, so that moving a threshold never changes the scale.
    Each nucleus counts once, in the block whose core holds its centroid."""
    settings: PostprocessSettings
    diameters: list[np.ndarray] = field(default_factory=list)

    def add(self, labels: np.ndarray, block: Block, height: int, width: int) -> None:
        kept, _ = objects_to_keep(labels, block, height, width)
        areas = np.bincount(labels.ravel(), minlength=len(kept))[kept]
        self.diameters.append(np.sqrt(4.0 * areas / math.pi))

    def median(self) -> float | None:
        diameters = np.concatenate(self.diameters) if self.diameters else np.zeros(0)
        return float(np.median(diameters)) if diameters.size else None


def stretched_planes(pixels: np.ndarray, channel: int | str, stretch: Stretch) -> np.ndarray:
    """The planes ``network_rgb(pixels, channel)`` is made of, stretched: ``network_rgb`` of
    the result (with channel 0 for a channel index) is ``stretch.apply(network_rgb(pixels,
    channel))``, as the stretch is per value."""
    return stretch.apply(pixels[..., :3] if channel == ALL_CHANNELS else pixels[..., channel:channel + 1])


def planes_rgb(planes: np.ndarray, channel: int | str) -> np.ndarray:
    """``network_rgb`` of ``stretched_planes``' result (a channel index is plane 0 there)."""
    return network_rgb(planes, ALL_CHANNELS if channel == ALL_CHANNELS else 0)


def stretched_input(pixels: np.ndarray, channel: int | str, stretch: Stretch) -> np.ndarray:
    """``preprocess(network_rgb(pixels, channel))`` with the whole image's stretch."""
    return planes_rgb(stretched_planes(pixels, channel, stretch), channel)


@dataclass(frozen=True)
class NetworkGrid:
    """The whole image's network input, of which each block computes its own part exactly.

    Two things must match the whole-image path for a block's probabilities to match:
    - the sample points: ``scale.rescale_image`` resizes the whole image (``ndimage.zoom``
      in grid mode, linear, smoothed first when shrinking); a block resized on its own
      would sample points shifted by up to half a network pixel;
    - the phase of the network's pooling: a U-Net's output is the same under shifts by a
      multiple of its downsampling (``multiple``, 16) only, and the whole image's tiles
      start at such multiples. A block starting anywhere else sees its nuclei through
      another pooling grid: probabilities differ by up to 0.6 and matched IoU against the
      whole image falls to 0.97. Each block's part therefore starts at a multiple of 16 of
      the whole image's network grid (rows before the window are its edge, repeated: they
      lie in the margin)."""
    height: int
    width: int
    factor: float
    multiple: int = 16

    @property
    def identity(self) -> bool:
        return abs(self.factor - 1.0) < 1e-3  # as rescale_image: no resampling at all

    @property
    def shape(self) -> tuple[int, int]:
        """The whole image's network input size."""
        if self.identity:
            return self.height, self.width
        return scaled_shape((self.height, self.width), self.factor)

    @property
    def zoom(self) -> tuple[float, float]:
        return self.shape[0] / self.height, self.shape[1] / self.width

    def to_network(self, prepared: np.ndarray, window: tuple[int, int, int, int]) -> tuple[np.ndarray, tuple[int, int]]:
        """(the window's part of the whole image's network input, its first network row and column)."""
        top, bottom, left, right = window
        rows = _network_indices(top, bottom, self.height, self.shape[0], self.multiple)
        columns = _network_indices(left, right, self.width, self.shape[1], self.multiple)
        if self.identity:
            picked = np.take(prepared, np.clip(rows - top, 0, bottom - top - 1), axis=0)
            picked = np.take(picked, np.clip(columns - left, 0, right - left - 1), axis=1)
            return picked, (int(rows[0]), int(columns[0]))
        if min(self.zoom) < 1.0:  # resize_image's anti-aliasing
            sigma = tuple(max(0.0, (1.0 / z - 1.0) / 2.0) for z in self.zoom) + (0.0,)
            prepared = ndimage.gaussian_filter(prepared, sigma, mode="mirror")
        sampled = linear_along(prepared, (rows + 0.5) / self.zoom[0] - 0.5 - top, axis=0)
        sampled = linear_along(sampled, (columns + 0.5) / self.zoom[1] - 0.5 - left, axis=1)
        return sampled, (int(rows[0]), int(columns[0]))

    def from_network(self, probabilities: np.ndarray, origin: tuple[int, int],
                     window: tuple[int, int, int, int]) -> np.ndarray:
        """Probabilities at the window's pixels, as the whole image's are resized back."""
        top, bottom, left, right = window
        if self.identity:
            picked = probabilities[top - origin[0]:bottom - origin[0]]
            return picked[:, left - origin[1]:right - origin[1]]
        if max(self.zoom) > 1.0:  # shrinking back: resize_image smooths first
            sigma = tuple(max(0.0, (z - 1.0) / 2.0) for z in self.zoom) + (0.0,)
            probabilities = ndimage.gaussian_filter(probabilities, sigma, mode="mirror")
        rows = (np.arange(top, bottom) + 0.5) * self.zoom[0] - 0.5 - origin[0]
        columns = (np.arange(left, right) + 0.5) * self.zoom[1] - 0.5 - origin[1]
        return linear_along(linear_along(probabilities, rows, axis=0), columns, axis=1)


def _network_indices(start: int, stop: int, length: int, network_length: int, multiple: int) -> np.ndarray:
    """Network rows for the window's [start, stop): from a multiple of ``multiple`` at or
    before the first whose sample point is in the window, to the last whose sample point
    is (at the image's own far edge, to the last row of the image's network input)."""
    zoom = network_length / length
    first = math.ceil((start + 0.5) * zoom - 0.5) // multiple * multiple
    last = network_length - 1 if stop == length else math.floor((stop - 0.5) * zoom - 0.5)
    return np.arange(first, max(first, last) + 1)


def job_segmenter(model: NucleiModel, job: BlockJob, check: ScaleCheck | None = None) -> Segmenter:
    return network_segmenter(model, job.plan, job.settings, job.tta, job.height, job.width, check)


def network_segmenter(model: NucleiModel, plan: ImagePlan, settings: PostprocessSettings, tta: bool | None,
                      height: int, width: int, check: ScaleCheck | None = None) -> Segmenter:
    """One block through the pipeline's steps with the image's fixed channel, stretch and
    network grid; ``check`` gathers the nuclei found with the model's tuned settings. On an
    image pasted onto a blank canvas, the network grid is the field of view's (as
    ``pipeline`` segments the field alone) and the canvas holds no nuclei."""
    inference = inference_for(model, tta, plan.stretch.invert)
    field = plan.content or Box(0, height, 0, width)
    grid = NetworkGrid(*field.shape, plan.factor, model.size_multiple)

    def predict_window(pixels: np.ndarray, window: tuple[int, int, int, int]) -> Prediction:
        # Stretch and resampling work plane by plane: done before network_rgb copies a grey
        # plane to three channels, they take a third of the time and memory.
        planes, origin = grid.to_network(stretched_planes(pixels, plan.channel, plan.stretch), window)
        part = planes_rgb(planes, plan.channel)
        with model.in_turn():
            probabilities = predict_preprocessed(model, part, inference, model.size_multiple)
        probabilities = grid.from_network(probabilities, origin, window)
        return Prediction(probabilities, plan.diameter, plan.diameter_source, plan.channel, plan.factor, model.diameter)

    def segment_block(pixels: np.ndarray, block: Block) -> np.ndarray:
        top, bottom, left, right = block.window
        inside = Box(*block.window).intersection(field)
        shape = (bottom - top, right - left)
        if inside.empty:
            return np.zeros(shape, np.int32)  # all canvas
        rows, columns = slice(inside.top - top, inside.bottom - top), slice(inside.left - left, inside.right - left)
        prediction = predict_window(pixels[rows, columns], (inside.top - field.top, inside.bottom - field.top,
                                                            inside.left - field.left, inside.right - field.left))

        def in_window(labels: np.ndarray) -> np.ndarray:
            placed = np.zeros(shape, labels.dtype)
            placed[rows, columns] = labels
            return placed

        labels = in_window(labels_for(model, prediction, settings))
        if check is not None:
            tuned = labels if settings == check.settings else in_window(labels_for(model, prediction, check.settings))
            check.add(tuned, block, height, width)
        return labels

    return segment_block
