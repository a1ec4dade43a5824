import math

import numpy as np
from PIL import Image

from nuclei_app import size_search
from nuclei_app.imageio import read_image
from nuclei_app.inference import preprocess
from nuclei_app.metrics import image_scores
from nuclei_app.pipeline import segment
from nuclei_app.scale import estimate_diameter, median_diameter
from nuclei_app.size_search import PROBE_DIAMETERS, SEARCH_ABOVE, checked_estimate, search_diameter

from .conftest import PROJECT

# A 512x512 crop of DSB2018 training image 1a115525...: a brightfield smear of large flat
# cells (~100 px) with small nuclei (~16 px) inside, and its 29 nuclei's masks.
SMEAR = PROJECT / "tests" / "data" / "brightfield_smear.png"
SMEAR_LABELS = PROJECT / "tests" / "data" / "brightfield_smear_labels.png"


def test_a_brightfield_smear_is_segmented_at_its_nuclei_not_its_cells(bundled_model):
    image = read_image(SMEAR)
    truth = np.asarray(Image.open(SMEAR_LABELS)).astype(np.int32)
    assert estimate_diameter(preprocess(image)) > SEARCH_ABOVE    # the blob estimate sees the cells
    result = segment(bundled_model, image)
    assert abs(math.log(result.prediction.diameter / median_diameter(truth))) < math.log(1.3)
    assert abs(result.count - truth.max()) <= 0.2 * truth.max()
    assert image_scores(truth, result.labels).mean_ap > 0.3        # 0.0 at the cells' scale


def fake_probes(monkeypatch, measure):
    """``probe`` answering ``measure(diameter)``; returns the diameters asked for, in order."""
    asked = []

    def probe(model, prepared, diameter):
        asked.append(diameter)
        return measure(diameter)

    monkeypatch.setattr(size_search, "probe", probe)
    return asked


def test_the_search_stops_at_the_smallest_scale_that_agrees_with_itself(monkeypatch, bundled_model):
    # Nuclei of 19 px measure 19 whatever the scale near theirs; far larger probes see cells
    # of 100 px (a second self-consistent scale), which the climb never reaches.
    asked = fake_probes(monkeypatch, lambda d: 19.0 * (d / 19.0) ** 0.3 if d < 60 else 100.0)
    found = search_diameter(bundled_model, np.zeros((64, 64, 3), np.float32))
    assert 16.0 < found < 22.0 and abs(math.log(found / 19.0)) < 0.05
    assert asked == [d for d in PROBE_DIAMETERS if d <= 22.0]


def test_a_probe_that_finds_nothing_counts_as_too_large(monkeypatch, bundled_model):
    fake_probes(monkeypatch, lambda d: 12.0 if d <= 11.0 else None)
    found = search_diameter(bundled_model, np.zeros((64, 64, 3), np.float32))
    assert math.isclose(found, math.sqrt(11.0 * 16.0))   # midway (in log) between the last probe that found nuclei and the next


def test_small_estimates_are_trusted_and_no_crossing_keeps_the_estimate(monkeypatch, bundled_model):
    asked = fake_probes(monkeypatch, lambda d: 2 * d)   # every probe finds larger objects: no crossing
    image = np.zeros((64, 64, 3), np.float32)
    assert checked_estimate(bundled_model, image, 30.0) == 30.0 and asked == []
    assert checked_estimate(bundled_model, image, 100.0) == 100.0 and asked == list(PROBE_DIAMETERS)


def test_a_probe_measures_the_nuclei_it_finds_and_ignores_a_handful_of_specks(bundled_model):
    from .test_scale import disks_image

    many, _ = disks_image(24, shape=(400, 400))
    found = size_search.probe(bundled_model, preprocess(many), 24.0)
    assert found is not None and abs(math.log(found / 24.0)) < math.log(1.25)
    few, labels = disks_image(24, shape=(90, 90))      # four disks: too few to measure
    assert labels.max() < size_search.MIN_PROBE_NUCLEI
    assert size_search.probe(bundled_model, preprocess(few), 24.0) is None
