"""A folder of "a lab's own annotated images" for trying ``python -m train --fine-tune``: the
bundled model's validation images of one kind (it never trained on them), linked, not copied,
in the competition layout training reads (<id>/images, <id>/masks).

    .venv/bin/python experiments/fine_tune/make_folder.py tissue /tmp/ft_tissue
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from nuclei_app.imageio import read_image
from nuclei_app.kinds import image_kind
from train.locations import default_data_dir

PROJECT = Path(__file__).resolve().parents[2]


def main(kind: str, out: Path) -> None:
    data = default_data_dir()
    ids = json.loads((PROJECT / "assets" / "model" / "nuclei.json").read_text())["training"]["validation_ids"]
    out.mkdir(parents=True, exist_ok=True)
    chosen = [i for i in ids if image_kind(read_image(data / i / "images" / f"{i}.png")) == kind]
    for sample_id in chosen:
        link = out / sample_id
        if not link.exists():
            link.symlink_to((data / sample_id).resolve(), target_is_directory=True)
    print(f"{len(chosen)} {kind} validation images of the bundled model linked into {out}")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
