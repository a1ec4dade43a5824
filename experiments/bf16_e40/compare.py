"""Side by side: the mean AP of two ``python -m train.evaluate`` outputs, every shift
condition and kind, with the difference and whether it beats the run-to-run noise.

    .venv/bin/python experiments/bf16_e40/compare.py BEFORE.txt AFTER.txt
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

KINDS = ("all", "fluorescence", "brightfield", "tissue")
# Two fits of the default recipe differing only in initial weights differ by up to this much
# (experiments/gpu_recipes/, "The noise"); the whole set's 0.011 from the same four fits.
NOISE = {"all": 0.011, "fluorescence": 0.010, "brightfield": 0.036, "tissue": 0.012}


def shift_table(text: str) -> dict[str, dict[str, float]]:
    """{condition: {kind: mean AP}} from the evaluate output's shift-validation table."""
    table = text[text.index("| condition |"):]
    scores = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        condition = cells[0].split()[0]
        scores[condition] = {kind: float(m.group(1)) for kind, cell in zip(KINDS, cells[1:])
                             if (m := re.match(r"([0-9.]+)", cell))}
    return scores


def compare(before: dict, after: dict) -> list[str]:
    lines = [f"{'condition':<10}" + "".join(f"{kind:>27}" for kind in KINDS)]
    for condition, kinds in before.items():
        cells = []
        for kind in KINDS:
            if kind not in kinds or kind not in after.get(condition, {}):
                cells.append(f"{'-':>27}")
                continue
            old, new = kinds[kind], after[condition][kind]
            mark = "*" if round(abs(new - old), 3) > NOISE[kind] else " "
            cells.append(f"{old:>9.3f} -> {new:.3f} ({new - old:+.3f}){mark}")
        lines.append(f"{condition:<10}" + "".join(cells))
    lines.append("* beyond the run-to-run noise of that kind (" +
                 ", ".join(f"{kind} {value}" for kind, value in NOISE.items()) + ")")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    before, after = (shift_table(Path(path).read_text()) for path in argv)
    print(f"mean AP, {argv[0]} -> {argv[1]}")
    print("\n".join(compare(before, after)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
