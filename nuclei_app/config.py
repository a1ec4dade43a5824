"""Every tunable setting of the product, in one typed place.

Frozen dataclasses: a setting is changed by making a new object (``dataclasses.replace``),
never by mutating a shared one, so a Streamlit session cannot leak settings into another.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
BUNDLED_MODEL_DIR = PROJECT_DIR / "assets" / "model"
SAMPLES_DIR = PROJECT_DIR / "assets" / "samples"


def user_cache_dir() -> Path:
    """The user's cache folder ($XDG_CACHE_HOME, else ~/.cache): the training data's download
    and the CLI's converted networks live under it."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


MODEL_ENV_VAR = "NUCLEI_MODEL"

# Compared in lower case: CELLS.PNG and scan.TIF are found too. GIF and WebP: first frame.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")


@dataclass(frozen=True)
class Normalisation:
    """How a raw image becomes network input; stored in ``nuclei.json`` with the model.

    Percentile stretching makes dim 16-bit and bright 8-bit images look alike. Images with
    a light background (brightfield, H&E tissue) are inverted so that nuclei are always
    the bright objects, which lets the many fluorescence images teach the few others.
    """

    low_percentile: float = 1.0
    high_percentile: float = 99.8
    invert_light_background: bool = True
    light_background_level: float = 0.5  # median intensity above which an image is inverted
    # The stretch spans at least this many times the image's pixel noise (``inference.
    # noise_level``): an empty field (a plate's empty well, camera offset and read noise) was
    # stretched until its noise filled the range, and the network found "nuclei" of 2 px in it.
    # Its 1st-99.8th percentile span is ~5x its noise; every DSB2018 training image's is at
    # least 14x (`python -m benchmarks.noise_floor`), so at 10 none of them is stretched
    # otherwise, and 25 nuclei 3x the noise above the background are all still found (20 at
    # 2x, against 8 without the floor).
    noise_span: float = 10.0


@dataclass(frozen=True)
class InferenceSettings:
    # Largest tile, network px: bounds memory on big images. 512 and 1024 take the same time
    # here and score the same (train.evaluate, every table to 3 decimals, x2 and x3 included),
    # but 512 peaks lower and leaves TensorFlow 0.09 GB less to keep after a 2048x2048 image.
    tile_size: int = 512
    tile_overlap: int = 64     # blended margin so that seams do not show in the output
    tta: bool = False          # average over flips: better edges, 4x the time
    # Flip TTA by default on light-background images (brightfield, H&E), where the network is
    # weakest and flips help most: validation mean AP +0.030 brightfield, +0.019 tissue, against
    # +0.005 on fluorescence (train.evaluate), which keeps its single pass and its speed.
    tta_light: bool = True


@dataclass(frozen=True)
class PostprocessSettings:
    threshold: float = 0.5         # nucleus-body probability that counts as foreground
    marker_threshold: float = 0.6  # marker score (postprocess.marker_score) that seeds one nucleus
    min_size: int = 12             # pixels; smaller objects are noise at DSB resolutions
    # Which pixels min_size counts: the model's tuned value counts pixels at the model's
    # nucleus diameter and is scaled to each image's nuclei (pipeline.scaled_settings); a
    # user's value (--min-size, the app's field) counts the image's own pixels, as the
    # measurements' areas do. Not stored in a model folder (model_values).
    min_size_in_image_pixels: bool = False

    # What a model folder's nuclei.json stores: the tuned values, at the model's scale.
    TUNED = ("threshold", "marker_threshold", "min_size")

    def model_values(self) -> dict:
        return {name: getattr(self, name) for name in self.TUNED}


@dataclass(frozen=True)
class ReadLimits:
    # Decompression bombs: a 40 Mpx image is larger than any widefield camera frame but a
    # 2048x2048 float RGB copy of it still fits in the memory of a Streamlit Cloud app.
    max_pixels: int = 40_000_000
    max_file_bytes: int = 200 * 1024 * 1024
    # Narrower images are refused with a reason. The pipeline itself runs on anything down to
    # 1x1 (checked with 1xN, 2xN and Nx2 strips), but a single row or column of pixels is a
    # wrong export, not a field of view, and no nucleus fits in it.
    min_side: int = 2


@dataclass(frozen=True)
class AppLimits:
    """What one page may hold, so one visitor can't exhaust a shared server's memory
    (Streamlit Community Cloud: 0.7-2.7 GB for the whole app). Measured with
    ``python -m benchmarks.app_memory`` (README): the model and runtime take ~0.6 GB; a
    segmentation needs ~60 bytes per pixel while it runs and the page keeps ~30 per pixel
    (channels, probabilities, labels) for every image it shows."""
    max_images: int = 12                 # images segmented per run; more get a message
    max_image_pixels: int = 16_000_000   # one image (4000x4000) segmented whole; larger ones go block by block
    # Block by block (as the CLI's huge images): memory is the stored pixels plus one block's
    # work (a 6000x6000 upload peaks below 2 GB); the bound is the time a visitor waits.
    max_blockwise_pixels: int = 100_000_000
    max_page_pixels: int = 24_000_000    # all images on one page together
    results_per_image: int = 8           # cached results per image (image, predictions, labels, tables)
