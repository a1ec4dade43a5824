"""How the automatic diameter reached its answer on the light validation images it gets most
wrong under combined shifts: the blob estimate, each size-search probe (probed diameter ->
median diameter of what the network found, None: fewer than 5 nuclei), the diameter the
pipeline starts from, and what the first pass measured.

    .venv/bin/python experiments/combined_shifts/trace.py   (from the project root; ~1 min)
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from combined import light_validation_images  # noqa: E402

from nuclei_app import size_search  # noqa: E402
from nuclei_app.pipeline import _predict_for_diameter, labels_for, network_input  # noqa: E402
from nuclei_app.scale import estimate_diameter, median_diameter  # noqa: E402
from nuclei_app.sources import resolve_model  # noqa: E402
from train import evaluate as ev  # noqa: E402

TRACED = ("13f2bec0", "45f059cf", "52a6b8ae")   # tissue images more than 30 % off under ihc


def trace(model, original, label: str) -> str:
    network = network_input(model, original.image)
    prepared, chosen, estimate = network.image, network.channel, network.estimate
    estimate = estimate if estimate is not None else estimate_diameter(prepared)
    probes = {}
    if estimate > size_search.SEARCH_ABOVE:
        probes = {d: size_search.probe(model, prepared, d) for d in size_search.PROBE_DIAMETERS}
    start = size_search.checked_estimate(model, prepared, estimate, probed=probes)
    first = _predict_for_diameter(model, prepared, start, "estimated", chosen, False, None)
    measured = median_diameter(labels_for(model, first)) or 0.0
    probed = ", ".join(f"{d:g}->{m:.0f}" if m else f"{d:g}->None" for d, m in probes.items()) or "not searched"
    return (f"{label:6s} {original.sample_id[:8]} truth {median_diameter(original.labels):5.1f}  "
            f"blob {estimate:5.1f}  start {start:5.1f}  measured {measured:5.1f}  probes: {probed}")


def main() -> None:
    model = resolve_model("assets/model", fallback=False)
    light = [o for o in light_validation_images(model) if o.sample_id[:8] in TRACED]
    ihc = ev.restained(light, "ihc")
    for label, images in (("x1", light), ("x2", ev.rescaled(light, 2.0)),
                          ("ihc x1", ihc), ("ihc x2", ev.rescaled(ihc, 2.0))):
        for original in images:
            print(trace(model, original, label), flush=True)


if __name__ == "__main__":
    main()
