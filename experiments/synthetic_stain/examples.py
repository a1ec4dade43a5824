"""Draws examples.png: fluorescence training crops and what ``synthetic_stain`` makes of them.

    .venv/bin/python experiments/synthetic_stain/examples.py   (from the project root)

Columns: the fluorescence crop as the network sees it | the stained light-background image
rendered from it | that image as the network sees it (inverted by the shared preprocess).
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nuclei_app.config import Normalisation  # noqa: E402
from nuclei_app.inference import preprocess  # noqa: E402
from train.augment import Augmentation, render_stained  # noqa: E402
from train.data import DEFAULT_DATA_DIR, find_samples, load_sample, random_crop  # noqa: E402

ROWS, CROP = 6, 160


def main() -> None:
    draw_examples(Augmentation(), Path(__file__).with_name("examples.png"))


def draw_examples(augmentation: Augmentation, out: Path) -> None:
    """Six fluorescence crops, each beside its rendering by ``augmentation``; also used by
    experiments/synthetic_tissue/examples.py (the crop's labels matter only to tissue)."""
    rng = np.random.default_rng(7)
    rows = []
    for files in find_samples(DEFAULT_DATA_DIR)[::23]:
        sample = load_sample(files, Normalisation(), 16.0)
        if sample.kind != "fluorescence":
            continue
        crop, labels = random_crop(sample, CROP, 1.0, rng)
        rendered = render_stained(crop, augmentation, rng, labels)
        rows.append(np.concatenate([crop, rendered, preprocess(rendered)], axis=1))
        if len(rows) == ROWS:
            break
    Image.fromarray((np.clip(np.concatenate(rows), 0, 1) * 255).astype(np.uint8)).save(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
