"""The network as its own size gauge, for images whose scale the blob estimate misjudges.

``scale.estimate_diameter`` answers to whatever structure covers the image, which on a
brightfield smear of large flat cells is the cells (100 px), not the nuclei inside them
(15 px): the network, shown the image shrunk to that scale, then finds the cells and
measures them at about the estimate, so the pipeline's check agrees with the wrong scale.

The search asks the network instead. Told that nuclei are d px across, it segments a centre
crop at that scale and the objects it finds measure m(d). Where d is far too small the
network sees whole nuclei enlarged (m > d); far too large, it sees specks or nothing
(m < d). The diameter where m(d) crosses d from above is a scale at which the network
agrees with itself. Cells around nuclei give a second such scale, larger; nuclei are the
smallest objects that agree, so the search climbs from small diameters and stops at the
first crossing that holds: real nuclei still measure about the same when the network is
told they are a step larger, while texture read as small nuclei grows with the told size
(stained tissue, experiments/combined_shifts/). It runs only where the blob estimate is
large (``SEARCH_ABOVE``): 33 of the 664 DSB2018 images, whose mean AP it lifts from 0.047 to
0.33 (brightfield smears 0.001 -> 0.36), with the shift validation level or higher
(experiments/size_search/, compare_output.txt).
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .inference import predict_preprocessed
from .postprocess import instance_labels
from .scale import content_crop, median_diameter, rescale_image, scale_factor

# Blob estimates above this many px are checked by the search: on DSB2018 every light image
# estimated above it (24 of 187 in the analysis: brightfield smears, tissue) was 1.5-7x off,
# and the search found its nuclei; below it the estimate is mostly right and cheaper.
SEARCH_ABOVE = 64.0
# Diameters probed, px, in steps of sqrt 2: DSB2018's nuclei are 10-50 px across, users'
# 8-120 px.
PROBE_DIAMETERS = (8.0, 11.0, 16.0, 22.0, 32.0, 45.0, 64.0, 90.0, 128.0)
# A probe that finds fewer nuclei than this found nothing to measure: on validation images
# enlarged x3 (nuclei ~130 px), small probes find two or three specks that happen to measure
# about the probed size, a crossing made of noise.
MIN_PROBE_NUCLEI = 5
# A crossing holds where the probe a step above it measures within this factor of it: a
# plateau. Nuclei of brightfield smears 1.03-1.23x, tissue nuclei 1.26x; texture on tissue
# re-stained with DAB that the network was told to see as 8-22 px nuclei 1.75-2.6x
# (experiments/combined_shifts/). One probe step is the line between the two.
PLATEAU_TOLERANCE = math.sqrt(2.0)
# Each probe segments a crop (``scale.content_crop``) this many probed diameters on a side (a
# 384 px network input at 16 px nuclei): enough nuclei to measure, at the cost of about one
# 384x384 pass.
PROBE_WINDOW = 24


def checked_estimate(model, prepared: np.ndarray, estimate: float, probed: dict | None = None) -> float:
    """The diameter the pipeline starts from: the blob estimate, or, where that is large
    enough to be cells, the search's answer (the estimate where the search finds none).
    ``probed`` (probed diameter -> ``probe``'s answer) spares probes already run and gets
    those run here (for ``fallback_diameter``)."""
    if model.diameter is None or estimate <= SEARCH_ABOVE:
        return estimate
    return search_diameter(model, prepared, probed) or estimate


def search_diameter(model, prepared: np.ndarray, probed: dict | None = None) -> float | None:
    """The smallest diameter at which the nuclei found measure what the network was told
    (interpolated between probes) and still about that a probe step higher; before any, the
    nuclei that emerge where the smaller probes found none, where they hold two steps
    (``_emerging``); the smallest crossing where none holds; None where none crossed."""
    measured = _cached_probes(model, prepared, {} if probed is None else probed)
    emerged = _emerging(measured)
    if emerged is not None and _holds_two_steps(measured, *emerged):
        return emerged[1]
    first = None
    for upper in range(1, len(PROBE_DIAMETERS)):
        crossing = _crossing_below(measured, upper)
        if crossing is None:
            continue
        if _holds(measured, upper + 1, crossing):
            return crossing
        first = first or crossing
    return first


def _emerging(measured) -> tuple[int, float] | None:
    """(index, measure) of the first probe to find nuclei, where smaller probes found none and
    it measures them at or below the size it was told; else None.

    Told too small a size, the network sees nuclei enlarged past anything it was trained on
    and finds none: that is the crossing's upper side too. On brightfield smear 08275a5b
    (nuclei 17.9 px) the probes told 8 and 11 px found nothing, and those told 16, 22 and
    32 px measured 15.8, 20.9 and 21.4: nuclei, a plateau, but no probe ever measured above
    its told size below them, so the only crossing was the cells' (96 px)
    (experiments/size_search/, "Emerging nuclei"). With nothing below to confirm it, it is
    taken only where it holds two probe steps up, not one: tissue texture on a validation
    image enlarged x3 (13f2bec0, nuclei 180 px) emerged at 20.9 px and held one step (21.6)
    but not two (47.8); nuclei 18.2 px across (f29fd9c5) emerged at 10.1 px, 16.4 a step up."""
    for index, told in enumerate(PROBE_DIAMETERS):
        found = measured(index)
        if found:
            return (index, found) if index and found <= told else None
    return None


def _holds_two_steps(measured, index: int, found: float) -> bool:
    """Whether the two probes above ``index`` both measure about ``found``; not where the grid
    ends before them (``_holds`` lets a crossing at the grid's end stand: not so here)."""
    steps = (index + 1, index + 2)
    return steps[-1] < len(PROBE_DIAMETERS) and all(_holds(measured, step, found) for step in steps)


def _cached_probes(model, prepared: np.ndarray, probed: dict):
    """``measured(i)``: ``probe`` at ``PROBE_DIAMETERS[i]``, taken from ``probed`` or run
    once and only when asked (and then kept in ``probed``)."""

    def measured(index: int) -> float | None:
        diameter = PROBE_DIAMETERS[index]
        if diameter not in probed:
            probed[diameter] = probe(model, prepared, diameter)
        return probed[diameter]
    return measured


def fallback_diameter(probed: dict) -> float | None:
    """For an image in which the pass at the checked estimate found no nuclei at all: the
    diameter measured by the probe that agreed best with the size it was told (None where
    no probe found nuclei, or none ran).

    Where no crossing holds the search keeps the blob estimate, which is right for stained
    tissue that the probes read as texture; but a dim fluorescence field of 375 nuclei 10 px
    across, estimated at the estimator's grid end (156 px), came out empty, while the network
    told 8 px found nuclei measuring 7.9 px (validation image a102535b0e, mean AP 0.0)."""
    agreeing = [(abs(math.log(found / told)), found) for told, found in probed.items() if found]
    return min(agreeing)[1] if agreeing else None


def _gap(measured, index: int) -> float:
    found = measured(index)
    return math.log(found / PROBE_DIAMETERS[index]) if found else -math.inf


def _crossing_below(measured, upper: int) -> float | None:
    """Where m(d) crosses d from above between probe ``upper - 1`` and ``upper``, else None."""
    low_gap = _gap(measured, upper - 1)
    if low_gap <= 0:
        return None
    high_gap = _gap(measured, upper)
    if high_gap > 0:
        return None
    return _crossing((PROBE_DIAMETERS[upper - 1], low_gap), (PROBE_DIAMETERS[upper], high_gap))


def _holds(measured, index: int, crossing: float) -> bool:
    """Whether probe ``index`` (a step above the crossing) still measures about the crossing;
    past the grid's end there is nothing to check against, and the crossing stands."""
    if index >= len(PROBE_DIAMETERS):
        return True
    found = measured(index)
    return found is not None and abs(math.log(found / crossing)) < math.log(PLATEAU_TOLERANCE)


def probe(model, prepared: np.ndarray, diameter: float) -> float | None:
    """Median diameter (px of the image) of the nuclei the network finds in its crop
    when told they are ``diameter`` px across; None where it finds fewer than
    ``MIN_PROBE_NUCLEI``."""
    factor = scale_factor(diameter, model.diameter)
    crop = content_crop(prepared, int(round(PROBE_WINDOW * diameter)))
    network_input = rescale_image(crop, factor)
    single_pass = replace(model.inference_settings, tta=False)
    probabilities = predict_preprocessed(model, network_input, single_pass, model.size_multiple)
    # Measured at the network's scale, where the model's settings (min_size) apply as tuned.
    labels = instance_labels(probabilities, model.postprocess_settings)
    if labels.max(initial=0) < MIN_PROBE_NUCLEI:
        return None
    return median_diameter(labels) / factor


def _crossing(below: tuple[float, float], above: tuple[float, float]) -> float:
    """Where log(m / d) reaches 0 between two probes, linear in log d (the midpoint where
    the upper probe found nothing)."""
    (low, low_gap), (high, high_gap) = below, above
    share = low_gap / (low_gap - high_gap) if math.isfinite(high_gap) else 0.5
    return math.exp(math.log(low) + share * (math.log(high) - math.log(low)))
