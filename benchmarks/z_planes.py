"""Which plane of a defocused Z-stack each --z-plane choice segments, and how well.

    python -m benchmarks.z_planes [--data FOLDER] [--every 4] [--model SOURCE]

Every ``--every``-th image of the data folder, made into a Z-stack of five planes: the image
in focus in the middle, blurred above and below as defocus blurs it (Gaussian, sigma 2 and
4 px), saved as an ImageJ TIFF with its axes. Each is read and segmented as the CLI does with
the default (the first plane), focus, max, and the sharp plane by number, and scored with
the DSB mean AP against the image's ground truth.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage

from benchmarks.sampled import sampled_images
from nuclei_app.imageio import decode_array, read_channels
from nuclei_app.metrics import image_scores
from nuclei_app.pipeline import segment
from nuclei_app.planes import FOCUS, MAX, PlaneRequest
from train.data import read_instance_labels

SIGMAS = (4, 2, 0, 2, 4)   # the in-focus plane is 2
CHOICES = {"default (the first)": None, "focus": FOCUS, "max": MAX, "2 (the sharp plane)": 2}


def defocus_stack(image: np.ndarray) -> np.ndarray:
    """(Z, Y, X[, C]) planes of ``image`` blurred by SIGMAS (colour channels blurred alike)."""
    spatial = (1, 1, 0) if image.ndim == 3 else (1, 1)
    return np.stack([ndimage.gaussian_filter(image.astype(np.float32), [s * a for a in spatial])
                     for s in SIGMAS]).round().astype(image.dtype)


def main(argv: list[str] | None = None) -> int:
    model, samples = sampled_images("python -m benchmarks.z_planes", __doc__, argv)
    scores = {name: [] for name in CHOICES}
    sharp_found = 0
    with tempfile.TemporaryDirectory() as folder:
        for files in samples:
            stack = defocus_stack(decode_array(files.image_path))
            path = Path(folder) / "stack.tif"
            tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "ZYXS" if stack.ndim == 4 else "ZYX"})
            truth = read_instance_labels(files)
            for name, z in CHOICES.items():
                notes: list[str] = []
                channels = read_channels(path, notes=notes, plane=PlaneRequest(z))
                scores[name].append(image_scores(truth, segment(model, channels).labels).mean_ap)
                sharp_found += z == FOCUS and "plane 2, the sharpest" in notes[0]
    print(f"{len(samples)} images as 5-plane stacks, in focus at plane 2 (blur sigma {SIGMAS})")
    for name, values in scores.items():
        print(f"--z-plane {name:20s} mean AP {np.mean(values):.3f}")
    print(f"focus chose the sharp plane on {sharp_found} of {len(samples)} stacks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
