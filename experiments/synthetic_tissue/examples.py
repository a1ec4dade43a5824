"""Draws examples.png: fluorescence training crops rendered as tissue by ``--synthetic-tissue``.

    .venv/bin/python experiments/synthetic_tissue/examples.py   (from the project root)

Columns: the fluorescence crop as the network sees it | the same crop rendered with
``synthetic_tissue_probability`` 1 (cytoplasm grown from its masks, solid uneven nuclear
stain, haematoxylin haze) | that rendering as the network sees it (the shared preprocess).
The same crops and drawing as experiments/synthetic_stain/examples.py.
"""
import sys
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parent / "synthetic_stain"))

from examples import draw_examples  # noqa: E402  (experiments/synthetic_stain/examples.py)

from train.augment import Augmentation  # noqa: E402

if __name__ == "__main__":
    draw_examples(replace(Augmentation(), synthetic_tissue_probability=1.0), HERE / "examples.png")
