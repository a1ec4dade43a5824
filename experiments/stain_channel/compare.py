"""Light images (brightfield, H&E, IHC) fed to the network as colours, or as one stain's
optical density from colour deconvolution (nuclei bright on dark, like fluorescence).

The bundled model, its validation split's brightfield and tissue images, every shift
condition of ``train.evaluate`` that holds them; each image segmented the way the pipeline
segments it (automatic diameter, flips where the image is light), scored by mean AP.

    .venv/bin/python experiments/stain_channel/compare.py [--model assets/model] [--limit N]

Caution: the ``stain``, ``ihc`` and ``dark`` conditions are made by mixing skimage's HED
amounts, so the haematoxylin channel of those images is the original one, scaled: an input
built from that channel is nearly blind to them by construction. The unshifted and rescaled
images (real stains) and ``grey`` are the fair test.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from skimage.color import rgb2hed

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

from nuclei_app.pipeline import inference_for, segment  # noqa: E402
from nuclei_app.sources import resolve_model  # noqa: E402
from train.data import find_samples, load_samples  # noqa: E402
from train.evaluate import LIGHT_KINDS, SCALE_SHIFTS, Original, light_shifts, originals, rescaled, score_labels  # noqa: E402
from train.locations import default_data_dir  # noqa: E402


def colours(image: np.ndarray) -> np.ndarray:
    return image


def haematoxylin(image: np.ndarray) -> np.ndarray:
    """Haematoxylin optical density (skimage's Ruifrok-Johnston vectors), one channel."""
    return rgb2hed(np.clip(image[..., :3], 1e-3, 1.0))[..., :1].astype(np.float32)


def nuclear_stains(image: np.ndarray) -> np.ndarray:
    """Haematoxylin plus DAB density: nuclei of either stain, eosin left out."""
    hed = rgb2hed(np.clip(image[..., :3], 1e-3, 1.0))
    return (hed[..., :1] + hed[..., 2:3]).astype(np.float32)


MODES = {"colours": colours, "haematoxylin": haematoxylin, "h+dab": nuclear_stains}


def light_validation(model, limit: int | None) -> list[Original]:
    wanted = set(model.metadata["training"]["validation_ids"])  # the split the model was tuned on
    files = [f for f in find_samples(default_data_dir()) if f.sample_id in wanted]
    light = [s for s in load_samples(files, model.normalisation, model.diameter) if s.kind in LIGHT_KINDS][:limit]
    return originals(light)


def conditions(images: list[Original]) -> dict[str, list[Original]]:
    return {"x1": images, **{f"x{f:g}": rescaled(images, f) for f in SCALE_SHIFTS}, **light_shifts(images)}


def mean_ap(model, images: list[Original], mode) -> dict[str, float]:
    tta = inference_for(model, None, light=True).tta  # as the pipeline treats light images
    labels = [segment(model, mode(original.image), tta=tta).labels for original in images]
    return {kind: scores["mean_ap"] for kind, scores in score_labels(images, labels).items()}


def run_comparison(argv: list[str], description: str, modes: list[str], scorer) -> int:
    """The light-image comparisons' shared run (this script's and its siblings'): arguments,
    the light validation images, every condition, one row per condition and kind.
    ``scorer(model)`` gives a note for the header and a function from a condition's images to
    {mode: {kind: mean AP}}."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default="assets/model")
    parser.add_argument("--limit", type=int, default=None, help="only the first N light images (a quick try)")
    args = parser.parse_args(argv)
    model = resolve_model(args.model, fallback=False)
    note, scores_of = scorer(model)
    images = light_validation(model, args.limit)
    counts = {kind: sum(o.kind == kind for o in images) for kind in LIGHT_KINDS}
    print(f"model {Path(args.model)}; light validation images {counts}{note}; mean AP")
    print(f"{'condition':<10}{'kind':<13}" + "".join(f"{mode:>14}" for mode in modes))
    started = time.perf_counter()
    for condition, shifted in conditions(images).items():
        scores = scores_of(shifted)
        for kind in scores[modes[0]]:
            print(f"{condition:<10}{kind:<13}" + "".join(f"{scores[m][kind]:>14.3f}" for m in modes), flush=True)
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


def main(argv: list[str]) -> int:
    def scorer(model):
        return "", lambda images: {name: mean_ap(model, images, mode) for name, mode in MODES.items()}

    return run_comparison(argv, __doc__.splitlines()[0], list(MODES), scorer)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
