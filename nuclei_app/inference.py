"""Full-resolution inference: normalise, pad, tile with overlap, blend, optional flip TTA.

``preprocess`` is the only place an image becomes network input; training, the CLI and the
app all call it, so the model sees exactly the same kind of input everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .canvas import Box, blank_outside, content_box, crop_sample
from .channelwise import channel_max
from .config import InferenceSettings, Normalisation
from .sampling import percentile_sample, percentile_stride

ProgressCallback = Callable[[int, int], None]  # (done, total) units of work


def preprocess(image: np.ndarray, normalisation: Normalisation = Normalisation()) -> np.ndarray:
    """float RGB in [0, 1] -> float32 network input: percentile-stretched, nuclei bright."""
    return prepare(image, normalisation)[0]


def prepare(image: np.ndarray, normalisation: Normalisation = Normalisation()) -> tuple[np.ndarray, Stretch]:
    """``preprocess``, with the stretch it applied (``invert``: the background is light).

    On an image pasted onto a blank canvas, the stretch and the light/dark test are made on
    the field (``canvas.content_box``) and the canvas becomes the network's background."""
    image = np.asarray(image, dtype=np.float32)
    return prepare_field(image, content_box(image), normalisation)


def prepare_field(image: np.ndarray, box: Box | None,
                  normalisation: Normalisation = Normalisation()) -> tuple[np.ndarray, Stretch]:
    """``prepare`` with the content box already found (``pipeline`` finds it on all of an
    image's channels, as ``blocks`` does, not on the nuclear channel alone)."""
    image = np.asarray(image, dtype=np.float32)
    sample = crop_sample(percentile_sample(image), box, percentile_stride(*image.shape[:2]))
    stretch, stretched = Stretch.fitted(sample, normalisation)
    if sample is image and not stretch.invert:
        # The whole image was the sample (up to 2 Mpx): its stretch is done already. (Not
        # where inverted: apply inverts before rounding to float32, bit for bit.)
        return stretched, stretch
    return blank_outside(stretch.apply(image), box), stretch


@dataclass(frozen=True)
class Stretch:
    """``preprocess``'s percentile stretch and light-background inversion, fitted once and
    applied to any part of the image: ``blocks`` fits it on the whole image's sample and
    applies it to every block alike (a block of background alone would otherwise be
    stretched until its noise looks like nuclei)."""
    low: float
    high: float
    invert: bool
    quiet: bool = False   # the span is the noise floor's (``Normalisation.noise_span``): an empty field?

    @classmethod
    def fit(cls, sample: np.ndarray, normalisation: Normalisation = Normalisation()) -> Stretch:
        """From the network RGB of the image's percentile sample (``percentile_sample``)."""
        return cls.fitted(sample, normalisation)[0]

    @classmethod
    def fitted(cls, sample: np.ndarray, normalisation: Normalisation = Normalisation()) -> tuple[Stretch, np.ndarray]:
        """``fit``, and the sample stretched (not inverted) on the way."""
        sample = np.asarray(sample, dtype=np.float32)
        low, high = np.percentile(sample, (normalisation.low_percentile, normalisation.high_percentile))
        if high - low < 1e-6:  # a flat image: nothing to stretch, avoid dividing by ~0
            high = low + 1e-6
        stretched = cls(low, high, False).apply(sample)
        # The sample is already the one is_light_background would take: not subsampled again.
        invert = normalisation.invert_light_background and _background_level(stretched) > normalisation.light_background_level
        floor = normalisation.noise_span * noise_level(sample)
        if high - low >= floor:
            return cls(low, high, bool(invert)), stretched
        # The floor widens the range away from the background, which keeps its side: a sparse
        # brightfield well's few dark nuclei are still inverted into bright ones.
        low, high = (high - floor, high) if invert else (low, low + floor)
        return cls(low, high, bool(invert), True), cls(low, high, False).apply(sample)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        scaled = np.clip((np.asarray(rgb, dtype=np.float32) - self.low) / (self.high - self.low), 0.0, 1.0)
        if self.invert:
            scaled = 1.0 - scaled
        return scaled.astype(np.float32, copy=False)


# Every 4th row of the sample is enough to measure its noise (a 512x512 RGB image: 196,000
# differences), at a quarter of the cost: this runs on every image.
NOISE_ROW_STRIDE = 4


def noise_level(sample: np.ndarray) -> float:
    """The standard deviation of the pixel noise, from the median absolute difference of
    horizontal neighbours (Gaussian noise: 0.6745 * sqrt(2) sigma). Nuclei and their edges are
    a minority of the pairs, so the median sees the background's noise. Where most neighbours
    are equal (noise under one grey level: a quiet 8-bit empty well), half the smallest step
    between them, the most that rounding to it hides; 0 for a flat image."""
    rows = np.asarray(sample, dtype=np.float32)[::NOISE_ROW_STRIDE]   # float: no unsigned wrap-around
    if rows.shape[1] < 2:
        return 0.0
    differences = np.abs(np.diff(rows, axis=1))
    median = float(np.median(differences))
    if median > 0:
        return median / (0.6745 * np.sqrt(2.0))
    steps = differences[differences > 0]
    return float(steps.min()) / 2 if steps.size else 0.0


def is_light_background(scaled: np.ndarray, normalisation: Normalisation = Normalisation()) -> bool:
    # Nuclei cover a minority of nearly every field of view, so the median pixel is background.
    # The brightest channel, not the mean: in a dense H&E field the median pixel is purple
    # or pink, dark in green but bright in red and blue, and it is still a light background.
    return _background_level(percentile_sample(scaled)) > normalisation.light_background_level


def _background_level(scaled: np.ndarray) -> float:
    return float(np.median(channel_max(scaled)))


def pad_to_multiple(image: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Reflect-pad bottom/right so both sides are multiples of ``multiple``."""
    height, width = image.shape[:2]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "symmetric"
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)
    return image, (height, width)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of ``tile`` overlapping by >= ``overlap``."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def blend_ramp(length: int, overlap: int) -> np.ndarray:
    """1-D weights that fade linearly to ~0 over the overlap, so seams average smoothly.

    Never exactly 0: at the image border only one tile covers a pixel and must count.
    """
    ramp = np.ones(length, dtype=np.float32)
    overlap = min(overlap, length // 2)  # a thin strip's only tile is thinner than the overlap
    if overlap > 0:
        fade = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        ramp[:overlap] = fade
        ramp[-overlap:] = np.minimum(ramp[-overlap:], fade[::-1])
    return ramp


def flip_variants(tta: bool) -> list[tuple[bool, bool]]:
    return [(False, False), (True, False), (False, True), (True, True)] if tta else [(False, False)]


def _flip(array: np.ndarray, vertical: bool, horizontal: bool) -> np.ndarray:
    if vertical:
        array = array[::-1]
    if horizontal:
        array = array[:, ::-1]
    return array


def predict_tile(model, tile: np.ndarray, tta: bool) -> np.ndarray:
    """Mean probability over the flip variants of one (H, W, 3) tile."""
    import keras  # here: whoever passes a model has loaded Keras already

    variants = flip_variants(tta)
    batch = np.stack([_flip(tile, v, h) for v, h in variants])
    # convert_to_numpy: a bare Keras model (training's panels and evaluation) returns the
    # backend's tensor, which under PyTorch must leave the autograd graph first.
    output = keras.ops.convert_to_numpy(model(batch, training=False))
    restored = [_flip(output[i], v, h) for i, (v, h) in enumerate(variants)]
    return np.mean(restored, axis=0)


def predict_probabilities(
    model,
    image: np.ndarray,
    normalisation: Normalisation = Normalisation(),
    settings: InferenceSettings = InferenceSettings(),
    multiple: int = 16,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Per-pixel probabilities (H, W, C) for a whole image at its own resolution."""
    return predict_preprocessed(model, preprocess(image, normalisation), settings, multiple, progress)


def predict_preprocessed(
    model,
    network_input: np.ndarray,
    settings: InferenceSettings = InferenceSettings(),
    multiple: int = 16,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Like ``predict_probabilities`` for an image that already went through ``preprocess``."""
    padded, (height, width) = pad_to_multiple(np.asarray(network_input, np.float32), multiple)
    tile = max(multiple, settings.tile_size - settings.tile_size % multiple)
    if padded.shape[0] <= tile and padded.shape[1] <= tile:
        probabilities = predict_tile(model, padded, settings.tta)
        if progress:
            progress(1, 1)
        return probabilities[:height, :width]
    return _predict_tiled(model, padded, tile, settings, progress, multiple)[:height, :width]


def balanced_tile(length: int, max_tile: int, overlap: int, multiple: int) -> int:
    """The smallest tile (a multiple of ``multiple``, <= max_tile where possible) that covers
    ``length`` with the fewest tiles: equal tiles waste less work than max-size ones plus a
    sliver, and one shape for all tiles means one traced graph."""
    if length <= max_tile:
        return length
    count = -(-(length - overlap) // (max_tile - overlap))
    tile = -(-(length + (count - 1) * overlap) // count)
    return min(length, -(-tile // multiple) * multiple)


def _predict_tiled(model, padded: np.ndarray, tile: int, settings: InferenceSettings,
                   progress: ProgressCallback | None, multiple: int = 16) -> np.ndarray:
    overlap = min(settings.tile_overlap, tile // 4)
    tile_h = balanced_tile(padded.shape[0], tile, overlap, multiple)
    tile_w = balanced_tile(padded.shape[1], tile, overlap, multiple)
    window = np.outer(blend_ramp(tile_h, overlap), blend_ramp(tile_w, overlap))
    positions = [
        (top, left)
        for top in tile_starts(padded.shape[0], tile_h, overlap)
        for left in tile_starts(padded.shape[1], tile_w, overlap)
    ]
    total = weights = None
    for done, (top, left) in enumerate(positions, start=1):
        patch = padded[top:top + tile_h, left:left + tile_w]
        prediction = predict_tile(model, patch, settings.tta)
        if total is None:
            total = np.zeros(padded.shape[:2] + prediction.shape[-1:], np.float32)
            weights = np.zeros(padded.shape[:2] + (1,), np.float32)
        total[top:top + tile_h, left:left + tile_w] += prediction * window[..., None]
        weights[top:top + tile_h, left:left + tile_w] += window[..., None]
        if progress:
            progress(done, len(positions))
    return total / np.maximum(weights, 1e-6)
