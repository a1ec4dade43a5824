"""The web page's data without Streamlit: inputs named and keyed, channel names, the view of a
strip, and an analysed image's rows and downloads (the page itself: test_app, test_app_browser)."""
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nuclei_app.calibration import PixelSize
from nuclei_app.channels import ALL_CHANNELS, AUTO
from nuclei_app.imageio import read_channels
from nuclei_app.measure import measure_nuclei
from nuclei_app.page import (FORMATS, Analysis, ImageChoices, InputImage, Settings, area_text, card_title,
                             channel_name, file_builders, input_images, page_row, page_view, record_row, shown_image,
                             truth_scores_csv)
from nuclei_app.pipeline import segment
from nuclei_app.results import FILE_SUFFIXES

from .conftest import SAMPLES


def test_inputs_get_unique_names_and_keys_even_for_the_same_file_twice():
    data = (SAMPLES / "images" / "fluorescence_sparse.png").read_bytes()
    items = input_images([("cells.png", data, None), ("cells.tif", data, None), ("other.png", b"x", None)])
    assert [item.name for item in items] == ["cells", "cells_2", "other"]
    assert [item.label for item in items] == ["cells.png", "cells.tif", "other.png"]
    assert items[0].key != items[1].key and items[0].key.split("_")[0] == items[1].key.split("_")[0]
    # Cards: two files of one name from two folders are told apart by their downloads' names.
    twins = input_images([("cells.png", data, None), ("cells.png", b"y", None)])
    assert [card_title(item, 30, 20) for item in twins] == ["cells.png  ·  30×20",
                                                              "cells.png (files: cells_2_…)  ·  30×20"]


def test_channels_are_named_as_the_page_shows_them():
    assert channel_name(AUTO, 3, rgb=True) == "automatic"
    assert channel_name(2, 3, rgb=True) == "2 (blue)"
    assert channel_name(2, 4, rgb=False) == "2"
    assert channel_name(ALL_CHANNELS, 3, rgb=True) == "all (RGB)"   # "all", as summary.csv and --channel say
    assert channel_name(ALL_CHANNELS, 3, rgb=True, grey=True) == "all (grey)"


def test_a_strip_is_shown_by_a_window_on_its_nuclei_and_a_field_whole():
    field = page_view(np.zeros((300, 400), np.int32))
    assert (field.note, field.width, field.step) == ("", "stretch", 1)
    strip = np.zeros((60, 6000), np.int32)
    strip[20:40, 3000:3020] = 1  # the only nucleus, far along the strip
    view = page_view(strip)
    assert "the interactive view pans along the strip" in view.note and view.start > 0
    assert view.still(strip).any()  # the window opens on the nucleus
    assert view.still(strip).shape[1] < strip.shape[1] // view.step


def test_an_analysed_image_gives_the_cli_s_summary_row_and_every_download(bundled_model):
    path = SAMPLES / "images" / "fluorescence_sparse.png"
    channels = read_channels(path)
    segmentation = segment(bundled_model, channels)
    table = measure_nuclei(segmentation.labels, channels[..., 0])
    item = InputImage("sparse", path.name, path.read_bytes(), "key_1")
    displayed = shown_image(channels, segmentation.prediction.channel, AUTO)  # as the app shows it: RGB
    analysis = Analysis(item, displayed, segmentation.prediction, segmentation.labels, table, "fluorescence",
                        pixel_size=PixelSize(0.5, "given"), choices=ImageChoices(), channels=channels, seconds=1.25)
    row = record_row(analysis, bundled_model.scores_for_new_images)
    height, width = segmentation.labels.shape
    assert (row["image"], row["width"], row["height"], row["nuclei"]) == ("sparse", width, height, segmentation.count)
    assert row["status"] == "ok" and row["diameter_source"] == segmentation.prediction.diameter_source
    shown = page_row(analysis)
    assert shown["Nuclei"] == segmentation.count > 0 and shown["Pixel size (µm)"] == "0.5"
    assert 0 < shown["Coverage (%)"] < 100
    settings = Settings(bundled_model.postprocess_settings, None, "outlines", 0.6)
    builders = file_builders(analysis, settings)
    assert set(builders) == {"sparse" + suffix for suffix in FILE_SUFFIXES} and "intensities" in FORMATS
    labels = np.asarray(Image.open(io.BytesIO(builders["sparse_labels.png"]())))
    np.testing.assert_array_equal(labels, segmentation.labels)
    assert len(pd.read_csv(io.BytesIO(builders["sparse_measurements.csv"]()))) == segmentation.count


def test_coverage_on_a_blank_canvas_is_the_field_s_and_no_nuclei_have_no_sizes(bundled_model):
    """A user test: a field on a blank canvas covered 11.6 % (of the canvas) against its 31.8 %
    alone, beside a note that the canvas holds no nuclei; and an image without nuclei showed
    areas of 0 px in the table."""
    from .conftest import on_canvas

    field = read_channels(SAMPLES / "images" / "fluorescence_sparse.png")

    def row(image, name):
        segmentation = segment(bundled_model, image)
        table = measure_nuclei(segmentation.labels, image[..., 0])
        item = InputImage(name, f"{name}.png", b"", f"key_{name}")
        return page_row(Analysis(item, image, segmentation.prediction, segmentation.labels, table, "fluorescence",
                                 channels=image))

    alone = row(field, "alone")
    framed = row(on_canvas(field, (3 * field.shape[0], 2 * field.shape[1]), (10, 20), 0.0), "framed")
    assert framed["Nuclei"] == alone["Nuclei"] > 0
    assert framed["Coverage (%)"] == pytest.approx(alone["Coverage (%)"], rel=0.02)
    empty = row(np.zeros((64, 64, 1), np.float32), "empty")
    assert empty["Nuclei"] == 0 and empty["Coverage (%)"] == 0
    assert all(np.isnan(empty[column]) for column in ("Mean area (px)", "Median area (px)", "Area SD (px)"))


def test_areas_round_half_up_as_the_batch_table_shows_them():
    """A user test: a median of 240.5 px read 240 on the card and 241 in the batch table."""
    assert [area_text(a, None) for a in (240.5, 241.5, 240.49, 0.0)] == ["241 px", "242 px", "240 px", "0 px"]
    assert area_text(100.0, PixelSize(0.5, "given")) == "25.0 µm²"


def test_a_channel_picked_by_hand_is_shown_as_the_network_saw_it():
    """A trial: the cytoplasm channel of a 3-channel stack, picked, was shown as the colour
    composite of all three; the automatic choice keeps an RGB composite's colours."""
    stack = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    picked = shown_image(stack, 0, 0)
    assert picked.shape == (20, 30, 3) and np.array_equal(picked[..., 1], stack[..., 0])
    assert np.array_equal(shown_image(stack, 2, AUTO), stack)             # automatic: the composite
    assert np.array_equal(shown_image(stack, ALL_CHANNELS, ALL_CHANNELS), stack)


def test_the_scores_table_lists_only_the_images_compared_with_a_truth(bundled_model):
    from nuclei_app.metrics import image_scores
    from nuclei_app.label_files import read_ground_truth

    image = read_channels(SAMPLES / "images" / "fluorescence_sparse.png")
    segmentation = segment(bundled_model, image)
    truth = read_ground_truth((SAMPLES / "ground_truth" / "fluorescence_sparse.png").read_bytes(), name="truth").labels

    def analysis(name, scores=None):
        return Analysis(InputImage(name, f"{name} (1).png", b"", f"key_{name}"), image, segmentation.prediction,
                        segmentation.labels, pd.DataFrame(), "fluorescence", truth_scores=scores)

    assert truth_scores_csv([analysis("a")]) is None
    scores = image_scores(truth, segmentation.labels)
    table = pd.read_csv(io.BytesIO(truth_scores_csv([analysis("a"), analysis("b", scores)])))
    assert table.to_dict("records") == [{"image": "b", "file": "b (1).png", **scores.as_dict()}]
