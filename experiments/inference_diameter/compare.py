"""The bundled model run with its nuclei brought to another size than it was trained at.

Copies assets/model with nuclei.json's ``scale.diameter`` set to each size (the network
then sees every image's nuclei at that size; nothing else changes, the post-processing
settings included) and scores each copy with ``python -m train.evaluate``, as the bundled
model's own tables are scored. About 12 minutes per size on 2 CPU cores:

    .venv/bin/python experiments/inference_diameter/compare.py [SIZE ...]   # default: 14 18
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def folder_at(size: float, into: Path) -> Path:
    folder = into / f"model_d{size:g}"
    shutil.copytree(PROJECT / "assets" / "model", folder)
    metadata = json.loads((folder / "nuclei.json").read_text())
    metadata["scale"]["diameter"] = float(size)
    (folder / "nuclei.json").write_text(json.dumps(metadata, indent=2))
    return folder


def main(sizes: list[float]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        for size in sizes:
            folder = folder_at(size, Path(scratch))
            result = subprocess.run([sys.executable, "-m", "train.evaluate", "--model", str(folder)], cwd=PROJECT,
                                    capture_output=True, text=True, check=True)
            (HERE / f"output_d{size:g}.txt").write_text(result.stdout)
            print(f"--- nuclei at {size:g} px\n{result.stdout}")


if __name__ == "__main__":
    main([float(size) for size in sys.argv[1:]] or [14.0, 18.0])
