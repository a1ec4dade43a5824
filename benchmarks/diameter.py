"""Accuracy of the network-free diameter estimator against the ground truth's median diameter.

    python -m benchmarks.diameter [--data DIR] [--max-images N]

Fits the estimator's bias on the training split (the constant ``ESTIMATOR_BIAS`` in
``nuclei_app/scale.py``) and reports its error on the validation split, per image kind and
with the images rescaled x0.5, x2 and x3 (a good estimator follows the rescaling).
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from nuclei_app.config import Normalisation
from nuclei_app.imageio import read_image
from nuclei_app.inference import preprocess
from nuclei_app.scale import ESTIMATOR_BIAS, estimate_diameter, rescale_image
from train.data import DEFAULT_DATA_DIR, KINDS, find_samples, load_samples, split_train_validation


def log_errors(samples, factor: float = 1.0) -> np.ndarray:
    """log(estimate / truth) per image, the estimate without its bias correction."""
    errors = []
    for sample in samples:
        image = preprocess(read_image(sample.files.image_path))
        if factor != 1.0:
            image = rescale_image(image, factor)
        estimate = estimate_diameter(image) * ESTIMATOR_BIAS
        errors.append(math.log(estimate / (sample.diameter * factor)))
    return np.array(errors)


def describe(errors: np.ndarray, bias: float) -> str:
    corrected = np.abs(errors - math.log(bias))
    return (f"median error {np.exp(np.median(corrected)) - 1:5.1%}, within 15 %: {(corrected < math.log(1.15)).mean():5.1%}, "
            f"within 30 %: {(corrected < math.log(1.3)).mean():5.1%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.diameter", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA_DIR)
    parser.add_argument("--max-images", type=int, help="only the first N images (quick look)")
    args = parser.parse_args(argv)
    files = find_samples(args.data)[: args.max_images]
    samples = load_samples(files, Normalisation())
    train, validation = split_train_validation(samples, 0.2, 42)
    started = time.time()
    train_errors = log_errors(train)
    fitted = math.exp(float(np.median(train_errors)))
    print(f"training split ({len(train)} images): fitted bias {fitted:.3f} (shipped ESTIMATOR_BIAS {ESTIMATOR_BIAS}); "
          f"{describe(train_errors, fitted)}")
    errors = log_errors(validation)
    print(f"validation split ({len(validation)} images), shipped bias: {describe(errors, ESTIMATOR_BIAS)}")
    for kind in KINDS:
        chosen = np.array([s.kind == kind for s in validation])
        if chosen.any():
            print(f"  {kind:>12} ({chosen.sum():3d}): {describe(errors[chosen], ESTIMATOR_BIAS)}")
    for factor in (0.5, 2.0, 3.0):
        print(f"validation x{factor:g}: {describe(log_errors(validation, factor), ESTIMATOR_BIAS)}")
    print(f"({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
