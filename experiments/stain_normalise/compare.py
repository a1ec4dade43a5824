"""Light images (brightfield, H&E, IHC) brought to the training set's average stain before
the network (Reinhard colour transfer: each Lab channel's mean and spread matched to the
training split's light images), against the colours as they are.

Inference only, the bundled model (trained on unnormalised colours): if matching the
stain lifted the re-stained conditions, a model trained with the same normalisation in its
shared preprocessing would be the next step. Each image segmented the way the pipeline does
(automatic diameter, flips because it is light), scored by mean AP.

    .venv/bin/python experiments/stain_normalise/compare.py [--model assets/model] [--limit N]

Reference: the Lab mean and standard deviation of every light image of the model's
training split (the data folder's light images not in its ``validation_ids``), pooled.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from skimage.color import lab2rgb, rgb2lab

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

from experiments.stain_channel.compare import run_comparison  # noqa: E402
from nuclei_app.imageio import read_image  # noqa: E402
from nuclei_app.kinds import image_kind  # noqa: E402
from nuclei_app.pipeline import segment  # noqa: E402
from train.data import find_samples  # noqa: E402
from train.evaluate import LIGHT_KINDS, score_labels  # noqa: E402
from train.locations import default_data_dir  # noqa: E402


def lab_of(image: np.ndarray) -> np.ndarray:
    """Lab of an RGB image (``read_image`` and every shift condition give three channels)."""
    return rgb2lab(np.clip(image, 0.0, 1.0))


def training_reference(model) -> tuple[np.ndarray, np.ndarray]:
    """Pooled Lab mean and standard deviation of the training split's light images."""
    validation = set(model.metadata["training"]["validation_ids"])
    pixels = []
    for files in find_samples(default_data_dir()):
        if files.sample_id in validation:
            continue
        image = read_image(files.image_path)
        if image_kind(image) in LIGHT_KINDS:
            pixels.append(lab_of(image)[::4, ::4].reshape(-1, 3))
    pooled = np.concatenate(pixels)
    return pooled.mean(axis=0), pooled.std(axis=0)


def reinhard(image: np.ndarray, reference: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    lab = lab_of(image)
    mean, std = lab.reshape(-1, 3).mean(axis=0), lab.reshape(-1, 3).std(axis=0)
    matched = (lab - mean) / np.maximum(std, 1e-6) * reference[1] + reference[0]
    return np.clip(lab2rgb(matched), 0.0, 1.0).astype(np.float32)


def mean_ap(model, images, change) -> dict[str, float]:
    labels = [segment(model, change(original.image), tta=True).labels for original in images]
    return {kind: scores["mean_ap"] for kind, scores in score_labels(images, labels).items()}


def main(argv: list[str]) -> int:
    def scorer(model):
        reference = training_reference(model)
        modes = {"colours": lambda image: image, "reinhard": lambda image: reinhard(image, reference)}
        note = (f"; reference Lab mean {np.round(reference[0], 1).tolist()}, "
                f"std {np.round(reference[1], 1).tolist()}")
        return note, lambda images: {name: mean_ap(model, images, change) for name, change in modes.items()}

    return run_comparison(argv, __doc__.splitlines()[0], ["colours", "reinhard"], scorer)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
