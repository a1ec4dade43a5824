"""The survey pass over a huge image: the samples the whole image's decisions are made on."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from nuclei_app.block_sources import ArraySource, TiffSource
from nuclei_app.canvas import Box, content_box
from nuclei_app.imageio import ImageReadError, read_channels
from nuclei_app.overview import survey

from .conftest import SAMPLES, on_canvas


@pytest.mark.parametrize("shape", [(5000, 40, 2), (700, 900, 3), (300, 200, 1)])
def test_the_channel_is_chosen_on_the_pixels_it_would_see_in_the_whole_image(shape):
    from nuclei_app.channels import _sample

    image = np.random.default_rng(3).random(shape, dtype=np.float32)
    np.testing.assert_array_equal(survey(ArraySource(image)).channels, _sample(image))


def test_the_survey_finds_the_field_as_the_whole_image_reader_does():
    field = read_channels(SAMPLES / "images" / "tissue_he.png")
    image = on_canvas(field, (1500, 1300), (700, 90), 0.0)
    overview = survey(ArraySource(image))
    assert overview.content == content_box(image) == Box(700, 700 + field.shape[0], 90, 90 + field.shape[1])


def test_a_truncated_tiff_is_reported_with_its_name(tmp_path):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 255, (600, 600), np.uint8), tile=(64, 64),
                     compression="zlib")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageReadError, match="cut.tif.*damaged or truncated"):
        with TiffSource(path) as source:
            survey(source)
