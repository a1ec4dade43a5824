"""The kind rule on the camera's range (``kinds.filled_range``) against the rule the training
images were sorted by before it, on every DSB2018 training image, and on 16-bit copies of the
bundled samples exposed to several brightest values.

    .venv/bin/python experiments/kind_rule/check.py   (from the project root, ~1 minute)

The split, the kind weights and the model card's per-kind numbers rest on the training
images' kinds: the first line must say that none changed.
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nuclei_app.canvas import content_box, crop  # noqa: E402
from nuclei_app.channelwise import channel_max, channel_mean, channel_min  # noqa: E402
from nuclei_app.config import SAMPLES_DIR  # noqa: E402
from nuclei_app.imageio import read_image  # noqa: E402
from nuclei_app.kinds import filled_range, image_kind  # noqa: E402
from train.data import DEFAULT_DATA_DIR, find_samples  # noqa: E402

EXPOSURES = (255, 1100, 2100, 3000, 4095, 16383)  # the brightest value, in 16-bit file units


def rule_before(image: np.ndarray) -> str:
    """image_kind as it was: the absolute thresholds on [0, 1] as read."""
    image = crop(image, content_box(image))
    if float(np.median(channel_mean(image))) < 0.5:
        return "fluorescence"
    return "tissue" if float(np.mean(channel_max(image) - channel_min(image))) > 0.08 else "brightfield"


def main() -> None:
    changed, rescaled, darkest_margin = [], 0, 0.0
    for files in find_samples(DEFAULT_DATA_DIR):
        image = read_image(files.image_path)
        if rule_before(image) != image_kind(image):
            changed.append(files.sample_id)
        field = crop(image, content_box(image))
        camera_range = filled_range(field)
        if camera_range < 1.0:
            rescaled += 1
            darkest_margin = max(darkest_margin, float(np.median(channel_mean(field))) / camera_range)
    print(f"training images whose kind changed: {len(changed)} {changed}")
    print(f"judged on a smaller camera range: {rescaled} (all dark; their background at most "
          f"{darkest_margin:.3f} of it, the light threshold 0.5)")
    for name in ("fluorescence_dense", "brightfield", "tissue_he"):
        image = read_image(SAMPLES_DIR / "images" / f"{name}.png")
        kinds = [image_kind((np.round(image / image.max() * top) / 65535).astype(np.float32)) for top in EXPOSURES]
        print(f"{name:19} as 16-bit with its brightest at " + ", ".join(f"{t}: {k}" for t, k in zip(EXPOSURES, kinds)))


if __name__ == "__main__":
    main()
