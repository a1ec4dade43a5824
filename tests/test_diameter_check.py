"""A diameter the user gives is checked against the image, an automatic one against the
smallest nuclei the model resolves: a note where it looks wrong."""
import numpy as np
import pytest

from nuclei_app.diameter_check import (LOWEST_ESTIMATE, diameter_doubt, diameter_note, given_diameter_note, image_notes,
                                       too_small_note)
from nuclei_app.image_notes import quiet_field_note
from nuclei_app.pipeline import segment
from nuclei_app.size_search import SEARCH_ABOVE

from .test_scale import disks_image


def never_asked() -> float:
    raise AssertionError("the blob estimate was computed although the nuclei found fit")


def asked(value: float, calls: list):
    return lambda: calls.append(value) or value


@pytest.fixture(scope="module")
def disks_20():
    return disks_image(20, shape=(256, 256))[1]   # 49 disks 20 px across


def test_a_diameter_the_nuclei_found_fit_costs_no_estimate(disks_20):
    assert diameter_doubt(20.0, disks_20, never_asked) is None
    assert diameter_doubt(24.0, disks_20, never_asked) is None   # within 1.25x


def test_nuclei_found_far_from_the_given_diameter_are_told(disks_20):
    calls = []
    note = diameter_doubt(60.0, disks_20, asked(21.0, calls))
    assert calls == [21.0]
    assert note.startswith("the diameter given, 60 px, looks wrong for this image: the 49 nuclei found at it "
                           "measure 20 px, a quick estimate from the image says about 21 px.")
    assert "--diameter in pixels (or in µm with its unit: 8um)" in note


def test_a_mild_disagreement_the_estimate_does_not_confirm_is_no_doubt(disks_20):
    calls = []
    assert diameter_doubt(28.0, disks_20, asked(22.0, calls)) is None   # found 1.4x off, estimate 1.3x
    assert calls == [22.0]


def test_too_few_nuclei_to_measure_fall_back_on_the_estimate():
    labels = np.zeros((64, 64), np.int32)
    labels[10:20, 10:20] = 1
    note = diameter_doubt(66.0, labels, lambda: 22.0)
    assert "1 nucleus found at it, a quick estimate from the image says about 22 px" in note
    assert diameter_doubt(66.0, np.zeros((64, 64), np.int32), lambda: 60.0) is None   # the estimate agrees


def test_an_estimate_that_may_measure_whole_cells_does_not_count(disks_20):
    assert diameter_doubt(66.0, np.zeros((64, 64), np.int32), lambda: SEARCH_ABOVE + 40) is None
    note = diameter_doubt(45.0, disks_20, lambda: SEARCH_ABOVE + 40)   # the nuclei found alone: 2.25x
    assert "measure 20 px." in note and "quick estimate" not in note


def test_the_advice_is_the_callers(disks_20):
    assert diameter_doubt(60.0, disks_20, lambda: 20.0, advice="Do this").endswith(". Do this")


def test_a_real_segmentation_at_a_diameter_three_times_too_large_is_noted(bundled_model):
    image, _ = disks_image(20, shape=(256, 256))
    right = segment(bundled_model, image, diameter=20.0)
    assert given_diameter_note(bundled_model, image, right) is None
    wrong = segment(bundled_model, image, diameter=60.0)
    note = given_diameter_note(bundled_model, image, wrong)
    assert note and "60 px, looks wrong" in note
    estimate = float(note.split("image says about ")[1].split(" px")[0])
    assert 12 <= estimate <= 25   # the disks are 20 px across


def test_an_estimated_diameter_is_never_doubted(bundled_model):
    image, _ = disks_image(20, shape=(256, 256))
    assert given_diameter_note(bundled_model, image, segment(bundled_model, image)) is None


def test_a_blank_field_at_a_right_diameter_is_not_doubted(bundled_model):
    """On noise the estimator answers its smallest size: no size at all, not 5 px nuclei (a
    review: every empty well of a plate run would have been told to change --diameter)."""
    assert diameter_doubt(20.0, np.zeros((64, 64), np.int32), lambda: LOWEST_ESTIMATE / 1.001) is None
    noise = np.random.default_rng(0).normal(0.1, 0.02, (256, 256, 3)).clip(0, 1).astype(np.float32)
    assert given_diameter_note(bundled_model, noise, segment(bundled_model, noise, diameter=20.0)) is None


def test_nuclei_are_counted_by_their_areas_not_the_highest_id():
    labels = np.zeros((64, 64), np.int32)
    labels[5:10, 5:10], labels[20:25, 20:25] = 2, 9
    assert "2 nuclei found at it" in diameter_doubt(60.0, labels, lambda: 5.5)


def test_an_automatic_diameter_under_the_smallest_the_model_resolves_is_noted():
    # The bundled model's nuclei are 16 px and images are enlarged at most 4x: 4 px is the floor.
    note = too_small_note(3.2, "measured", 16.0)
    assert note and "3.2 px across" in note and "the 4 px nuclei" in note and "empty field" in note
    assert too_small_note(3.9, "estimated", 16.0)
    assert too_small_note(4.0, "measured", 16.0) is None
    assert too_small_note(3.0, "given", 16.0) is None     # the user's word: the given check's business
    assert too_small_note(3.0, "none", 16.0) is None      # no scale: the image's own (a model without one)
    assert too_small_note(3.0, "estimated", None) is None


def test_objects_under_the_smallest_diameter_resolved_are_told_so(bundled_model):
    """A user test: an empty well and a noise-only field each came back as hundreds of 2-3 px
    "nuclei", status ok, no note. Dots of 2x2 px, above a quiet background, still do."""
    dots = np.random.default_rng(0).random((96, 96, 3)).astype(np.float32) * 0.02
    for dy in (2, 3):
        for dx in (2, 3):
            dots[dy::8, dx::8] = 0.5
    segmentation = segment(bundled_model, dots)
    assert segmentation.prediction.diameter < 4
    note = diameter_note(bundled_model, dots, segmentation)
    assert note and "noise on an empty field" in note
    image, _ = disks_image(20, shape=(256, 256))
    assert diameter_note(bundled_model, image, segment(bundled_model, image)) is None


def test_noise_alone_gives_no_nuclei_and_is_told_why(bundled_model):
    """The percentile stretch gave noise full contrast; now it spans at least
    ``Normalisation.noise_span`` times the noise, and the field is segmented at the model's
    own diameter, not at the blob estimator's smallest (which measured the noise)."""
    noise = np.random.default_rng(0).random((96, 96, 1)).repeat(3, -1).astype(np.float32)   # a grey empty well
    segmentation = segment(bundled_model, noise)
    assert segmentation.count == 0 and segmentation.prediction.quiet
    assert segmentation.prediction.diameter == bundled_model.diameter
    notes = image_notes(bundled_model, noise, segmentation)
    assert notes == [quiet_field_note(True, 0, True)] and notes[0].startswith("hardly any contrast above the image's noise")
    given = image_notes(bundled_model, noise, segment(bundled_model, noise, diameter=16.0))
    assert given == [quiet_field_note(True, 0, False)] and "diameter" not in given[0]


def test_an_image_a_few_nuclei_narrow_is_noted():
    """A user test: a 5000x20 strip came back as 45 objects without a word."""
    from nuclei_app.diameter_check import narrow_image_note

    note = narrow_image_note((20, 5000), 16.0)
    assert note.startswith("the image is only 20 px tall, 1.2 nucleus diameters (16.0 px given)") and "approximate" in note
    assert "px wide" in narrow_image_note((5000, 30), 16.0)
    assert narrow_image_note((48, 5000), 16.0) is None and narrow_image_note((20, 5000), None) is None
    # An estimate this large may be the problem, not the image (a user test: 300 px bands, 123 px "nuclei").
    assert narrow_image_note((300, 3000), 123.0, "estimated").endswith("the estimate is wrong: give the diameter")
    assert "estimate" not in note


def test_an_image_shrunk_below_its_diameter_by_the_network_s_size_cap_is_noted():
    from nuclei_app.diameter_check import capped_scale_note
    from nuclei_app.pipeline import Prediction

    empty = np.zeros((1, 1, 2), np.float32)
    capped = Prediction(empty, 8.0, "given", "all", factor=0.67, canonical_diameter=16.0)
    note = capped_scale_note(capped)
    assert note.startswith("segmented as if its nuclei were 24 px across, not the 8.0 px given") and "--block-size" in note
    assert capped_scale_note(Prediction(empty, 8.0, "given", "all", factor=2.0, canonical_diameter=16.0)) is None
    assert capped_scale_note(Prediction(empty, None, "none", "all")) is None
