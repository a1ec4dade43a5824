import json

from nuclei_app.validation_record import (scored_on_training_image, scores_caveat, scores_for_new_images,
                                          trained_on_dsb2018, validation_label)

from .conftest import PROJECT

BUNDLED = json.loads((PROJECT / "assets" / "model" / "nuclei.json").read_text())


def test_the_bundled_model_s_scores_are_of_dsb2018_held_out_by_source_group():
    assert trained_on_dsb2018(BUNDLED["training"]) and not scored_on_training_image(BUNDLED["training"])
    assert validation_label(BUNDLED) == "Validation (DSB2018, 20% held out by source group)"
    assert scores_for_new_images(BUNDLED) == BUNDLED["metrics"]


def test_a_model_scored_on_a_training_image_has_no_scores_for_new_images(tiny_model):
    metadata = tiny_model.metadata
    assert scored_on_training_image(metadata["training"]) and metadata["metrics"]["validation"]
    assert scores_for_new_images(metadata) == {} and tiny_model.scores_for_new_images == {}
    assert validation_label(metadata).startswith("Scored on an image it trained on")


def test_a_lab_s_own_images_held_out_by_image_are_named():
    metadata = {"training": {"data": "/home/lab/our_nuclei", "validation_fraction": 0.25,
                             "images": {"train": 6, "validation": 2, "validation_is_training": False,
                                        "validation_by_image": True}}, "metrics": {"validation": {}}}
    assert not trained_on_dsb2018(metadata["training"])
    assert validation_label(metadata) == "Validation (`our_nuclei`, 25% held out by image)"
    beside = {**metadata, "training": {**metadata["training"], "data": "../lab/our_nuclei/.."}}   # relative, as recorded
    assert validation_label(beside) == "Validation (`lab`, 25% held out by image)"


def test_a_record_that_is_not_one_describes_nothing_it_does_not_hold():
    """A Hub folder's nuclei.json may hold anything: no scores, and a label that claims no data."""
    assert scores_for_new_images({"training": [1], "metrics": "x"}) == {} and scores_for_new_images({}) == {}
    assert validation_label({"training": [1]}) == "Validation (`?`, 20% held out by source group)"
    label = validation_label({"training": {"validation_fraction": "a"}})
    assert label == "Validation (`?`, part held out by source group)"


def test_the_caveat_beside_a_model_says_why_its_scores_flatter_it(tiny_model):
    assert scores_caveat(BUNDLED["training"]) is None
    assert scores_caveat(tiny_model.metadata["training"]).startswith("scored on an image it trained on")
    by_image = {"images": {"train": 6, "validation": 2, "validation_is_training": False, "validation_by_image": True}}
    assert scores_caveat(by_image).startswith("held out by image from one source")
