"""The network in 8-bit integers (``--precision int8``): weights and activations quantized, run
on TensorFlow Lite's XNNPACK kernels.

Two cores are busy with one float32 forward pass, so the batch can only get faster if the
network itself costs less (issue 9). Integer arithmetic does: XNNPACK's int8 convolutions use
AVX-512 VNNI / AVX-VNNI where the CPU has them, and AVX2 elsewhere. The weights are quantized
per channel; each activation's range is calibrated once, on what the network sees in use: the
bundled sample images (fluorescence, brightfield, H&E), prepared as the pipeline prepares any
image (channel, percentile stretch) and rescaled so their nuclei have the model's diameter (from
their ground truth, so calibration needs no forward pass). Input and output stay float32: the
pipeline around the network does not change. What that does to the scores is measured on the
validation split (``python -m train.evaluate --precision int8``, docs/precision_validation.txt).
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np

from .config import SAMPLES_DIR

CALIBRATION_CROP = 128      # px: small crops, many positions; ranges, not context, are sought
CROPS_PER_SAMPLE = 12
# Bumped when quantize_settings or calibration_inputs change what they make: cached int8
# networks of older settings are then not used.
QUANTIZE_FORMAT = "1"


class CalibrationError(RuntimeError):
    """The bundled samples int8 is calibrated on can't be read (an installation without them)."""


def calibration_inputs(model) -> list[np.ndarray]:
    """(1, CROP, CROP, 3) float32 network inputs from the bundled samples, at the model's scale.
    Deterministic: the same model gets the same calibration, hence the same int8 network."""
    from .imageio import read_image
    from .label_files import read_labels
    from .pipeline import network_input
    from .scale import median_diameter, rescale_image, scale_factor

    rng = np.random.default_rng(0)
    crops = []
    samples = sorted((SAMPLES_DIR / "images").glob("*.png"))
    missing = [path.name for path in samples if not (SAMPLES_DIR / "ground_truth" / path.name).is_file()]
    if not samples or missing:
        lacking = "none are there" if not samples else "these lack it: " + ", ".join(missing)
        raise CalibrationError(f"int8 is calibrated on the bundled sample images and their ground truth in "
                               f"{SAMPLES_DIR}, and {lacking}; reinstall the app's files or use --precision float32")
    for path in samples:
        prepared = network_input(model, read_image(path)).image
        truth = read_labels(SAMPLES_DIR / "ground_truth" / path.name)
        scaled = rescale_image(prepared, scale_factor(median_diameter(truth), model.diameter))
        # Reflected up to one crop where a sample shrank below it (no blank margins to calibrate on).
        short = [(0, max(0, CALIBRATION_CROP - side)) for side in scaled.shape[:2]]
        padded = np.pad(scaled, [*short, (0, 0)], mode="symmetric")
        for _ in range(CROPS_PER_SAMPLE):
            top = rng.integers(0, padded.shape[0] - CALIBRATION_CROP + 1)
            left = rng.integers(0, padded.shape[1] - CALIBRATION_CROP + 1)
            crop = padded[top:top + CALIBRATION_CROP, left:left + CALIBRATION_CROP]
            crops.append(np.ascontiguousarray(crop[None], dtype=np.float32))
    return crops


def calibration_digest(inputs: list[np.ndarray]) -> str:
    """Names the calibration in the converted network's cache key (other samples, another network)."""
    digest = hashlib.sha256()
    for array in inputs:
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def quantize_settings(converter, inputs: list[np.ndarray]) -> None:
    """Sets ``converter`` (a ``tf.lite.TFLiteConverter``) to full-integer quantization with
    float32 input and output; every operation in int8, or the conversion fails (no silent
    float32 islands that would make the "int8" network slower than it says)."""
    import tensorflow as tf

    def representative() -> Iterator[list[np.ndarray]]:
        for array in inputs:
            yield [array]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
