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
fluorescence has, with masks drawn to the same outline.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.color import hed2rgb, hsv2rgb, rgb2hed, rgb2hsv

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


def synthetic_stain(network_input: np.ndarray, aug: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """A fluorescence crop (nuclei bright) rendered as a light-background stained image, then
    through the shared ``preprocess`` as any light image would be."""
    return preprocess(render_stained(network_input, aug, rng))


def render_stained(network_input: np.ndarray, aug: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) RGB in (0, 1]: a nuclear stain in proportion to the fluorescence signal, a
    textured counterstain everywhere (Beer-Lambert: transmitted light = exp(-optical density))."""
    signal = np.clip(np.asarray(network_input, np.float32).mean(axis=-1), 0.0, 1.0) ** rng.uniform(0.6, 1.4)
    # The nuclear stain is drawn before the grey-field choice even when that discards it: the
    # order of random draws is what the bundled model's crops were made with.
    nuclear = _jittered(HAEMATOXYLIN, rng)
    if rng.random() < 0.2:   # unstained brightfield: both "stains" grey
        nuclear = counter = GREY
    else:
        counter = _jittered(COUNTERSTAINS[int(rng.integers(len(COUNTERSTAINS)))], rng)
    texture = ndimage.gaussian_filter(rng.random(signal.shape, np.float32), rng.uniform(*aug.counterstain_texture_px))
    texture = (texture - texture.mean()) / max(float(texture.std()), 1e-6)
    counter_od = rng.uniform(*aug.counterstain_od) * np.clip(1.0 + 0.35 * texture, 0.2, None)
    optical_density = (rng.uniform(*aug.nuclear_stain_od) * signal)[..., None] * nuclear + counter_od[..., None] * counter
    return np.exp(-optical_density).astype(np.float32)


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
