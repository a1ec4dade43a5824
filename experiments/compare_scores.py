"""Mean AP per shift condition and image kind of several models, side by side, each against
the first, with a mark where a difference beats the run-to-run noise.

Each argument is an exported model folder (its ``nuclei.json``, as the export or
``python -m train.evaluate --write`` left it) or a text holding ``train.evaluate``'s shift
table (its printed output, or a model card). Compare models scored the same way only: a
folder's scoring (``postprocess_scoring``) is printed under its name.

    .venv/bin/python experiments/compare_scores.py assets/model runs/bf16e26/model ...
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

KINDS = ("all", "fluorescence", "brightfield", "tissue")
# Two fits of the default recipe differing only in initial weights differ by up to this much
# (experiments/gpu_recipes/, "The noise"); the whole set's 0.011 from the same four fits.
NOISE = {"all": 0.011, "fluorescence": 0.010, "brightfield": 0.036, "tissue": 0.012}


def scores(path: Path) -> tuple[dict[str, dict[str, float]], str]:
    """({condition: {kind: mean AP}}, how it was scored) of a model folder or a text."""
    if path.is_dir():
        metrics = json.loads((path / "nuclei.json").read_text())["metrics"]
        conditions = {"x1": metrics["validation"], **metrics["shift"]}
        table = {condition: {kind: values["mean_ap"] for kind, values in kinds.items() if kind in KINDS}
                 for condition, kinds in conditions.items()}
        return table, metrics.get("postprocess_scoring", "?")
    return text_table(path.read_text()), "text"


def text_table(text: str) -> dict[str, dict[str, float]]:
    """{condition: {kind: mean AP}} from the ``| condition | all | ...`` table of a text."""
    if "| condition |" not in text:
        raise SystemExit("no '| condition |' shift table in this text")
    scores = {}
    for line in text[text.index("| condition |"):].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        scores[cells[0].split()[0]] = {kind: float(m.group(1)) for kind, cell in zip(KINDS, cells[1:])
                                       if (m := re.match(r"([0-9.]+)", cell))}
    return scores


def cell(first: float | None, value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if first is None:
        return f"{value:.3f}"
    mark = "*" if round(abs(value - first), 3) > NOISE[kind] else ""
    return f"{value:.3f} ({value - first:+.3f}){mark}"


def report(tables: dict[str, dict]) -> list[str]:
    names = list(tables)
    width = max(18, *(len(n) + 2 for n in names))
    lines = [f"{'condition':<10}{'kind':<14}" + "".join(f"{n:>{width}}" for n in names)]
    for condition in tables[names[0]]:
        for kind in KINDS:
            first = tables[names[0]][condition].get(kind)
            values = [tables[n].get(condition, {}).get(kind) for n in names]
            if all(v is None for v in values):
                continue
            cells = [cell(None, first, kind)] + [cell(first, v, kind) for v in values[1:]]
            lines.append(f"{condition:<10}{kind:<14}" + "".join(f"{c:>{width}}" for c in cells))
    lines.append("(+-) against the first; * beyond the run-to-run noise of that kind (" +
                 ", ".join(f"{kind} {value}" for kind, value in NOISE.items()) + ")")
    return lines


def main(arguments: list[str]) -> int:
    if len(arguments) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    tables, scoring = {}, []
    for argument in arguments:
        path = Path(argument)
        name = path.parent.name if path.is_dir() and path.name == "model" else path.name
        tables[name], how = scores(path)
        scoring.append(f"{name} {how}")
    print("mean AP; scoring: " + ", ".join(scoring))
    print("\n".join(report(tables)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
