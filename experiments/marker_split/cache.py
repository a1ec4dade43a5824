"""Cache the bundled model's predictions on the validation split (probabilities at each
image's own size, as the pipeline makes them by default), so that post-processing variants
can be scored without running the network again. ~2 min on 2 cores:

    .venv/bin/python experiments/marker_split/cache.py /tmp/marker_split [MODEL_FOLDER]     (from the project root)

MODEL_FOLDER: default the bundled model, assets/model.
"""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nuclei_app.pipeline import predict_labels  # noqa: E402
from nuclei_app.sources import resolve_model  # noqa: E402
from train import evaluate as ev  # noqa: E402
from train.data import find_samples, load_samples  # noqa: E402

DATA = Path("../shared/data/dsb2018/stage1_train")


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model = resolve_model(sys.argv[2] if len(sys.argv) > 2 else "assets/model", fallback=False)
    wanted = set(model.metadata["training"]["validation_ids"])
    samples = load_samples([f for f in find_samples(DATA) if f.sample_id in wanted], model.normalisation,
                           model.diameter)
    for original in ev.originals(samples):
        prediction, _ = predict_labels(model, original.image)
        record = {"id": original.sample_id, "kind": original.kind, "group": original.group,
                  "truth": original.labels, "prediction": prediction}
        (out / f"{original.sample_id}.pkl").write_bytes(pickle.dumps(record))
    print(f"{len(samples)} predictions in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
