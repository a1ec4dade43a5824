import numpy as np
import pytest

from nuclei_app.block_sources import ArraySource
from nuclei_app.canvas import (MAX_CANVAS_VALUE_SHARE, MIN_FIELD_SIDE, Box, CanvasSurvey, blank_outside, content_box,
                               crop_sample, field_box)
from nuclei_app.imageio import read_image
from nuclei_app.overview import survey
from nuclei_app.sampling import percentile_sample

from .conftest import SAMPLES, fluorescence_like, jpeg, on_canvas, synthetic_labels


def noisy_field(shape=(120, 160), seed=0, channels=3) -> np.ndarray:
    """A field of view: nuclei on a noisy background (8-bit levels, in [0, 1])."""
    field = fluorescence_like(synthetic_labels(shape, seed=seed), seed=seed).astype(np.float32) / 255
    return np.repeat(field[..., None], channels, axis=-1) if channels > 1 else field


@pytest.mark.parametrize("fill", [0.0, 1.0, 0.5])
@pytest.mark.parametrize("at", [(0, 0), (40, 70), (280, 340)])
def test_the_field_is_found_on_a_canvas_of_any_value_anywhere(fill, at):
    field = noisy_field()
    image = on_canvas(field, (400, 500), at, fill)
    assert content_box(image) == Box(at[0], at[0] + 120, at[1], at[1] + 160)
    assert content_box(image[..., 0]) == Box(at[0], at[0] + 120, at[1], at[1] + 160)  # grey too


def test_integer_pixels_are_read_as_floats_are():
    image = on_canvas(noisy_field(), (400, 500), (40, 60), 1.0)
    assert content_box((image * 255).round().astype(np.uint8)) == content_box(image) == Box(40, 160, 60, 220)


def test_an_image_without_a_canvas_has_no_box():
    assert content_box(noisy_field()) is None
    assert content_box(np.full((64, 64), 0.3, np.float32)) is None     # one value: nothing to find
    assert content_box(np.zeros((1, 64), np.float32)) is None          # a single row


def test_a_clipped_background_is_not_taken_for_a_canvas():
    """Nuclei on a background clipped to black reach the edges with black rows, but the
    black is all around the nuclei inside their box too: the image is left whole."""
    image = np.zeros((200, 200), np.float32)
    rng = np.random.default_rng(1)
    for top, left in [(60, 60), (60, 120), (120, 80)]:
        image[top:top + 20, left:left + 20] = rng.uniform(0.5, 1.0, (20, 20))
    share = (image[60:140, 60:140] == 0).mean()
    assert share > MAX_CANVAS_VALUE_SHARE
    assert content_box(image) is None


@pytest.mark.parametrize("shape", [(1, 1), (3, 40), (40, 3), (2, 2)])
def test_a_tiny_spot_on_a_blank_image_is_no_field(shape):
    image = np.zeros((100, 120), np.float32)
    image[50:50 + shape[0], 60:60 + shape[1]] = 1.0
    assert content_box(image) is None


def test_a_speck_is_not_a_field():
    image = np.zeros((200, 200), np.float32)
    image[90:90 + MIN_FIELD_SIDE - 1, 50:150] = np.random.default_rng(2).uniform(0.2, 1, (MIN_FIELD_SIDE - 1, 100))
    assert content_box(image) is None
    image[90:90 + MIN_FIELD_SIDE, 50:150] = np.random.default_rng(2).uniform(0.2, 1, (MIN_FIELD_SIDE, 100))
    assert content_box(image) == Box(90, 90 + MIN_FIELD_SIDE, 50, 150)


@pytest.mark.parametrize("fill, mark", [(0.0, 1.0), (1.0, 0.0)])
def test_a_scale_bar_and_a_label_on_the_canvas_are_left_on_it(fill, mark):
    """A user test: a figure export with a scale bar below the field was not taken for a
    field on a canvas at all (the bar widened the box until the canvas filled a third of it)."""
    image = on_canvas(noisy_field((150, 170)), (400, 500), (40, 60), fill)
    image[300:306, 380:480] = mark                     # a scale bar
    image[330:342, 380:410] = mark * 0.8               # its label
    assert content_box(image) == Box(40, 190, 60, 230)


@pytest.mark.parametrize("frame", [(2, 2, 2, 2), (1, 5, 3, 2)])
def test_a_frame_around_the_field_on_the_canvas_is_left_out(frame):
    """A user test: a brightfield field with a 2 px black frame on white was segmented at 7 px."""
    top, bottom, left, right = frame
    framed = np.zeros((150 + top + bottom, 170 + left + right, 3), np.float32)
    framed[top:top + 150, left:left + 170] = noisy_field((150, 170))
    image = on_canvas(framed, (400, 500), (40, 60), 1.0)
    field = Box(40 + top, 40 + top + 150, 60 + left, 60 + left + 170)
    assert content_box(image) == field
    source = ArraySource(image)
    assert survey(source).content == field                   # block by block too


def test_a_clipped_background_at_a_field_s_edges_is_not_a_frame():
    field = noisy_field((150, 170))
    field[field < 0.1] = 0.0        # a background clipped to black, inside the field too
    field[:20], field[-20:], field[:, :20], field[:, -20:] = 0.0, 0.0, 0.0, 0.0
    image = on_canvas(field, (400, 500), (40, 60), 1.0)
    assert content_box(image) == Box(40, 190, 60, 230)


@pytest.mark.parametrize("name, fill, quality", [("tissue_he", 0.0, 90), ("brightfield", 1.0, 90),
                                                 ("brightfield", 1.0, 95), ("tissue_he", 1.0, 75)])
def test_a_jpeg_canvas_s_halo_is_left_out(name, fill, quality):
    """A user test: on a JPEG canvas the box took in the compression's halo, 12-16 px around
    the field (an H&E field on black gave 52 nuclei at 29.4 px against 73 at 23.6 alone), or
    was not found at all (brightfield on white: the halo made the box 5.08 % white)."""
    field = read_image(SAMPLES / "images" / f"{name}.png")
    image = jpeg(on_canvas(field, (700, 900), (203, 301), fill), quality)   # not on JPEG's 8 px grid
    box = content_box(image)
    truth = (203, 203 + field.shape[0], 301, 301 + field.shape[1])
    assert box is not None and np.abs(np.subtract((box.top, box.bottom, box.left, box.right), truth)).max() <= 5


@pytest.mark.parametrize("line", ["row", "column"])
def test_a_line_of_the_canvas_s_value_across_the_field_does_not_cut_it(line):
    """A review: a white row across a field on white, 5 px from its top, cut the 5 rows above
    it off as a mark."""
    image = on_canvas(noisy_field((150, 170)), (400, 500), (50, 80), 1.0)
    if line == "row":
        image[55, 80:250] = 1.0
    else:
        image[50:200, 88] = 1.0
    assert content_box(image) == survey(ArraySource(image)).content == Box(50, 200, 80, 250)


def test_a_dense_field_on_exact_black_is_not_taken_for_a_field_on_a_canvas():
    """A review: touching discs on a background of exact black, 4.2 % of their box, were taken
    for a light field on a black canvas and inverted."""
    image = np.zeros((256, 256), np.float32)
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:256, :256]
    for y in range(62, 197, 13):
        for x in range(52, 200, 13):
            image[(yy - y) ** 2 + (xx - x) ** 2 <= 81] = rng.uniform(0.4, 0.8)
    rows, columns = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    share = (image[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1] == 0).mean()
    assert 0.01 < share < 0.05, share
    assert content_box(image) is None


def test_two_fields_on_one_canvas_are_not_taken_for_a_field_and_a_mark():
    image = on_canvas(noisy_field((150, 170)), (400, 500), (20, 20), 0.0)
    image[220:370, 300:470] = noisy_field((150, 170), seed=1)
    assert content_box(image) is None                   # segmented whole, canvas and all


def test_the_canvas_value_is_that_of_the_first_uniform_outer_line():
    """A white bar at the top, the field, then black below it: the top line is white, so
    white is the canvas and the black rows belong to the content."""
    image = np.zeros((300, 200, 3), np.float32)
    image[:50] = 1.0
    image[50:150, 20:180] = noisy_field((100, 160))
    assert content_box(image) == Box(50, 300, 0, 200)


def surveyed(image: np.ndarray, block: tuple[int, int]) -> CanvasSurvey:
    survey = CanvasSurvey(image[0], image[-1], image.shape[0])
    for top in range(0, image.shape[0], block[0]):
        for left in range(0, image.shape[1], block[1]):
            survey.add(image[top:top + block[0], left:left + block[1]], top, left)
    return survey


@pytest.mark.parametrize("at", [(101, 57), (0, 0), (180, 240)])
@pytest.mark.parametrize("block", [(64, 64), (37, 500), (500, 23)])
def test_a_survey_by_parts_finds_the_box_content_box_finds(block, at):
    image = on_canvas(noisy_field((150, 170), channels=2), (330, 410), at, 0.0)
    image[5:8, 5:40] = 1.0 if at == (101, 57) else 0.0  # a mark on the canvas, where it is one
    survey = surveyed(image, block)
    read = lambda top, bottom, left, right: image[top:bottom, left:right]  # noqa: E731
    field = Box(at[0], at[0] + 150, at[1], at[1] + 170)
    assert field_box(survey, read, percentile_sample(image)) == content_box(image) == field


def test_a_survey_stops_comparing_once_no_outer_line_can_be_canvas():
    image = noisy_field((300, 400))
    assert CanvasSurvey(image[0], image[-1], 300).following == 0   # the four corners differ: no line can be
    image[:, 0] = 0.0
    image[200, 0] = 0.5                 # a black left column, but for one pixel
    survey = CanvasSurvey(image[0], image[-1], 300)
    assert survey.following == 1
    survey.add(image[:64], 0, 0)
    assert survey.following == 1
    survey.add(image[192:256], 192, 0)
    assert survey.following == 0
    assert content_box(image) is None


@pytest.mark.parametrize("stride", [1, 2, 3, 7])
def test_a_sample_is_cropped_to_the_pixels_it_took_inside_the_box(stride):
    image = np.arange(100 * 90, dtype=np.float32).reshape(100, 90)
    box = Box(13, 71, 5, 88)
    cropped = crop_sample(image[::stride, ::stride], box, stride)
    rows, columns = np.arange(100)[::stride], np.arange(90)[::stride]
    inside_rows = rows[(rows >= 13) & (rows < 71)]
    inside_columns = columns[(columns >= 5) & (columns < 88)]
    np.testing.assert_array_equal(cropped, image[np.ix_(inside_rows, inside_columns)])


def test_a_box_between_samples_keeps_one_sample():
    sample = np.arange(10 * 10).reshape(10, 10)   # image[::10, ::10] of a 100x100 image
    assert crop_sample(sample, Box(41, 45, 95, 99), 10).shape == (1, 1)


def test_blank_outside_sets_the_canvas_to_the_network_s_background():
    box = Box(10, 30, 20, 50)
    image = np.ones((40, 70, 3), np.float32)
    assert blank_outside(image, box) is image
    assert image[box.slices].min() == 1.0 and image.sum() == 20 * 30 * 3
