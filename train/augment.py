"""Augmentation: spans the images users bring, not just the ones DSB2018 has.

Crops are taken from images already at the canonical nucleus diameter (``train/data.py``), so
geometry only jitters the scale a little around it: enough to absorb an imperfect diameter
estimate, not so much that the network must learn every nucleus size.

Intensity augmentation acts on the network-input domain (the output of the shared
``preprocess``: nuclei bright). Light-background images (brightfield, H&E) were inverted by
``preprocess``; their stain jitter is done in HED space on the un-inverted colours, which is
how a different H&E protocol or scanner changes an image.

DSB2018 has few light-background sources (16 brightfield training images from one or two
sources), so ``synthetic_stain`` also renders some fluorescence crops as stained
light-background images (Beer-Lambert: a nuclear stain where the fluorescence is, a textured
counterstain around it), giving the network light images of every nucleus shape and density
fluorescence has, with masks drawn to the same outline. Some of them can be drawn as tissue
(``synthetic_tissue_probability``): a cytoplasm of counterstain around each nucleus (the crop's
own masks, grown), nuclei of uneven stain with chromatin texture, and haematoxylin in the
background too, the dense purple look of H&E sections that fluorescence crops don't give.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.color import hed2rgb, hsv2rgb, rgb2hed, rgb2hsv
from skimage.segmentation import expand_labels

from nuclei_app.inference import preprocess


@dataclass(frozen=True)
class Augmentation:
    scale_range: tuple[float, float] = (0.7, 1.4)   # around the canonical diameter
    flip_rotate: bool = True
    stain_probability: float = 0.8     # HED jitter, light-background (stained) images
    stain_sigma: float = 0.08          # per-stain gain spread; bias spread is a quarter of it
    hue_probability: float = 0.5       # hue rotation + saturation change: other stains (IHC, Giemsa)
    hue_shift: float = 0.12            # fraction of the colour circle
    saturation_range: tuple[float, float] = (0.5, 1.5)
    colour_jitter: float = 0.12        # per-channel gain / offset spread
    gamma_range: tuple[float, float] = (0.6, 1.6)
    contrast_range: tuple[float, float] = (0.6, 1.3)
    greyscale_probability: float = 0.2
    invert_probability: float = 0.08   # guards against a wrong light-background guess
    noise_std: float = 0.04
    blur_probability: float = 0.25
    blur_sigma: tuple[float, float] = (0.5, 2.0)
    synthetic_stain_probability: float = 0.0   # fluorescence crops rendered as stained images
    nuclear_stain_od: tuple[float, float] = (0.5, 2.0)     # optical density where the signal is 1
    counterstain_od: tuple[float, float] = (0.03, 0.45)
    counterstain_texture_px: tuple[float, float] = (1.5, 12.0)
    synthetic_tissue_probability: float = 0.0  # of the rendered crops: drawn as tissue
    cytoplasm_px: tuple[float, float] = (2.0, 10.0)        # grown around each nucleus (16 px canonical)
    cytoplasm_od: tuple[float, float] = (0.1, 0.6)         # extra counterstain in it
    background_haematoxylin_od: tuple[float, float] = (0.0, 0.3)
    nucleus_stain_spread: float = 0.3                      # log-normal spread of each nucleus's stain


# Optical density per unit stain in R, G, B (Ruifrok & Johnston's vectors, as in skimage's
# rgb2hed): haematoxylin for nuclei; eosin (H&E), DAB (IHC, yellow-brown) or a neutral grey
# (unstained brightfield) for what surrounds them.
HAEMATOXYLIN = np.array([0.65, 0.70, 0.29])
EOSIN, DAB, GREY = np.array([0.07, 0.99, 0.11]), np.array([0.27, 0.57, 0.78]), np.array([0.58, 0.58, 0.58])
COUNTERSTAINS = (EOSIN, DAB, GREY)


def random_scale(aug: Augmentation, rng: np.random.Generator) -> float:
    low, high = aug.scale_range
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def flip_rotate(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator):
    turns, flip = int(rng.integers(4)), bool(rng.integers(2))
    image, labels = np.rot90(image, turns), np.rot90(labels, turns)
    if flip:
        image, labels = image[:, ::-1], labels[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(labels)


def stain_jitter(network_input: np.ndarray, aug: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """Changes the amount and shade of haematoxylin, eosin and DAB of an inverted stained image."""
    colours = np.clip(1.0 - network_input, 1e-3, 1.0)        # back to light background
    hed = rgb2hed(colours)
    gains = rng.normal(1.0, aug.stain_sigma, 3)
    biases = rng.normal(0.0, aug.stain_sigma / 4, 3) * np.abs(hed).max(axis=(0, 1)).clip(1e-3)
    jittered = hed2rgb(hed * gains + biases)
    return 1.0 - np.clip(jittered, 0.0, 1.0)


def synthetic_stain(network_input: np.ndarray, aug: Augmentation, rng: np.random.Generator,
                    labels: np.ndarray | None = None) -> np.ndarray:
    """A fluorescence crop (nuclei bright) rendered as a light-background stained image, then
    through the shared ``preprocess`` as any light image would be."""
    return preprocess(render_stained(network_input, aug, rng, labels))


def render_stained(network_input: np.ndarray, aug: Augmentation, rng: np.random.Generator,
                   labels: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) RGB in (0, 1]: a nuclear stain in proportion to the fluorescence signal, a
    textured counterstain everywhere (Beer-Lambert: transmitted light = exp(-optical density));
    given the crop's ``labels``, sometimes drawn as tissue (``tissue_densities``)."""
    signal = np.clip(np.asarray(network_input, np.float32).mean(axis=-1), 0.0, 1.0) ** rng.uniform(0.6, 1.4)
    # The nuclear stain is drawn before the grey-field choice even when that discards it: the
    # order of random draws is what the bundled model's crops were made with.
    nuclear = _jittered(HAEMATOXYLIN, rng)
    if rng.random() < 0.2:   # unstained brightfield: both "stains" grey
        nuclear = counter = GREY
    else:
        counter = _jittered(COUNTERSTAINS[int(rng.integers(len(COUNTERSTAINS)))], rng)
    texture = _standardised(ndimage.gaussian_filter(rng.random(signal.shape, np.float32),
                                                    rng.uniform(*aug.counterstain_texture_px)))
    counter_od = rng.uniform(*aug.counterstain_od) * np.clip(1.0 + 0.35 * texture, 0.2, None)
    nuclear_od = rng.uniform(*aug.nuclear_stain_od) * signal
    background_od = np.zeros_like(signal)
    # Drawn after everything above, and only when asked for: without it a recipe's crops are
    # the very same as before tissue rendering existed.
    if labels is not None and aug.synthetic_tissue_probability and rng.random() < aug.synthetic_tissue_probability:
        nuclear_od, counter_od, background_od = tissue_densities(labels, nuclear_od, counter_od, aug, rng)
    optical_density = (nuclear_od[..., None] * nuclear + counter_od[..., None] * counter
                       + background_od[..., None] * HAEMATOXYLIN)
    return np.exp(-optical_density).astype(np.float32)


def tissue_densities(labels: np.ndarray, nuclear_od: np.ndarray, counter_od: np.ndarray, aug: Augmentation,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nuclear, counterstain and background-haematoxylin optical densities of a tissue-like
    rendering: each nucleus its own stain strength and a chromatin grain, a cytoplasm of
    counterstain grown around it (cells touch where nuclei are dense), a purple haze over all."""
    labels = np.asarray(labels)
    # Stained nuclei are solid where fluorescence may be patchy (nucleoli, uneven DNA): half
    # the stain follows the signal, half fills the nucleus (its mask, edge softened).
    solid = ndimage.gaussian_filter((labels > 0).astype(np.float32), 0.7)
    peak = float(nuclear_od.max()) or 1.0
    strength = np.exp(rng.normal(0.0, aug.nucleus_stain_spread, int(labels.max()) + 1)).astype(np.float32)
    grain = 1.0 + 0.3 * _unit_texture(labels.shape, 1.0, rng)
    nuclear_od = (0.5 * nuclear_od + 0.5 * peak * solid) * strength[labels] * np.clip(grain, 0.3, None)
    cells = expand_labels(labels, rng.uniform(*aug.cytoplasm_px))
    cytoplasm = ndimage.gaussian_filter(((cells > 0) & (labels == 0)).astype(np.float32), 1.5)
    cytoplasm_od = rng.uniform(*aug.cytoplasm_od) * np.clip(1.0 + 0.3 * _unit_texture(labels.shape, 2.0, rng), 0.2, None)
    counter_od = counter_od + cytoplasm * cytoplasm_od
    haze = rng.uniform(*aug.background_haematoxylin_od) * np.clip(1.0 + 0.5 * _unit_texture(labels.shape, 6.0, rng), 0.0, None)
    return nuclear_od, counter_od, haze.astype(np.float32)


def _unit_texture(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field with mean 0 and standard deviation 1 (grain of about ``sigma`` px)."""
    return _standardised(ndimage.gaussian_filter(rng.random(shape, np.float32), sigma))


def _standardised(field: np.ndarray) -> np.ndarray:
    return (field - field.mean()) / max(float(field.std()), 1e-6)


def _jittered(stain: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(stain + rng.normal(0.0, 0.08, 3), 0.02, None)


def hue_saturation(image: np.ndarray, aug: Augmentation, rng: np.random.Generator) -> np.ndarray:
    hsv = rgb2hsv(np.clip(image, 0.0, 1.0))
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-aug.hue_shift, aug.hue_shift)) % 1.0
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(*aug.saturation_range), 0.0, 1.0)
    return hsv2rgb(hsv)


def augment_intensity(image: np.ndarray, aug: Augmentation, rng: np.random.Generator,
                      stained: bool = False) -> np.ndarray:
    """Colour, contrast, blur and noise changes of one (H, W, 3) network-input crop."""
    image = np.asarray(image, np.float32)
    if stained and rng.random() < aug.stain_probability:
        image = stain_jitter(image, aug, rng)
    if rng.random() < aug.hue_probability:
        image = hue_saturation(image, aug, rng)
    image = image * (1.0 + rng.normal(0, aug.colour_jitter, 3)) + rng.normal(0, aug.colour_jitter / 3, 3)
    if rng.random() < aug.greyscale_probability:
        image = np.repeat(image.mean(axis=-1, keepdims=True), 3, axis=-1)
    image = np.clip(image, 0.0, 1.0) ** rng.uniform(*aug.gamma_range)
    mean = image.mean()
    image = (image - mean) * rng.uniform(*aug.contrast_range) + mean
    if rng.random() < aug.blur_probability:
        image = ndimage.gaussian_filter(image, sigma=(rng.uniform(*aug.blur_sigma),) * 2 + (0,))
    if rng.random() < aug.invert_probability:
        image = 1.0 - image
    image = image + rng.normal(0, aug.noise_std * rng.random(), image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32)
