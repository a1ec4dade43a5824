"""Mean AP per condition and image kind of several exported model folders, side by side.

Reads each folder's ``nuclei.json`` (the scores its export or ``train.evaluate`` wrote), so
it compares folders scored the same way only; it prints that way (``postprocess_scoring``)
under each name.

    python experiments/gpu_recipes/compare_runs.py runs/gpu/base/model runs/gpu/s50/model ...
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

KINDS = ("all", "fluorescence", "brightfield", "tissue")


def conditions(metrics: dict) -> dict[str, dict]:
    return {"x1": metrics["validation"], **metrics["shift"]}


def main(folders: list[str]) -> None:
    runs = {Path(f).parent.name or f: json.loads((Path(f) / "nuclei.json").read_text())["metrics"] for f in folders}
    names = list(runs)
    print("scoring: " + ", ".join(f"{n} {runs[n].get('postprocess_scoring', '?')}" for n in names))
    print(f"{'condition':<10}{'kind':<14}" + "".join(f"{n:>10}" for n in names))
    for condition in conditions(runs[names[0]]):
        for kind in KINDS:
            scores = [conditions(runs[n])[condition].get(kind, {}).get("mean_ap") for n in names]
            if all(s is None for s in scores):
                continue
            print(f"{condition:<10}{kind:<14}" + "".join(f"{s:>10.3f}" if s is not None else f"{'-':>10}" for s in scores))


if __name__ == "__main__":
    main(sys.argv[1:])
