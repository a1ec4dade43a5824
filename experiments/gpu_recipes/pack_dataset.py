"""Packs DSB2018 stage1_train into the flat layout (inputs/, masks/ label PNGs), grey where the
channels are equal, so it travels to the GPU machine under 64 MiB."""
import sys
from pathlib import Path
import numpy as np
from PIL import Image
from train.data import find_samples, read_instance_labels
from nuclei_app.imageio import read_image

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
(dst / "inputs").mkdir(parents=True, exist_ok=True); (dst / "masks").mkdir(parents=True, exist_ok=True)
for f in find_samples(src):
    pixels = np.asarray(Image.open(f.image_path))
    if pixels.ndim == 3:
        pixels = pixels[..., :3]
        if (pixels == pixels[..., :1]).all():
            pixels = pixels[..., 0]
    Image.fromarray(pixels).save(dst / "inputs" / f"{f.sample_id}.png", optimize=True)
    labels = read_instance_labels(f)
    Image.fromarray(labels.astype(np.uint16)).save(dst / "masks" / f"{f.sample_id}.png", optimize=True)
    a, b = read_image(f.image_path), read_image(dst / "inputs" / f"{f.sample_id}.png")
    assert a.shape == b.shape and (a == b).all(), f.sample_id
