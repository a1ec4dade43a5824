"""The PNG writer against Pillow's reader: every pixel back, for each kind the results use."""
import io

import numpy as np
import pytest
from PIL import Image

from nuclei_app.png import ROWS_PER_PIECE, png_bytes, write_png


def read_back(encoded: bytes) -> tuple[np.ndarray, str]:
    with Image.open(io.BytesIO(encoded)) as image:
        image.load()  # checks every chunk's CRC and the data's length
        return np.asarray(image), image.mode


@pytest.mark.parametrize("shape, dtype, mode", [((37, 53, 3), np.uint8, "RGB"), ((37, 53), np.uint8, "L"),
                                                ((37, 53), np.uint16, "I;16")])
def test_every_pixel_reads_back(shape, dtype, mode):
    pixels = np.random.default_rng(1).integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    back, read_mode = read_back(png_bytes(pixels))
    assert read_mode == mode and back.dtype == dtype
    np.testing.assert_array_equal(back, pixels)


def test_images_taller_than_a_piece_and_strided_views_read_back():
    pixels = np.random.default_rng(2).integers(0, 256, (2 * ROWS_PER_PIECE + 3, 40, 3), dtype=np.uint8)
    for view in (pixels, pixels[::2, ::3], pixels[:, :, ::-1]):
        np.testing.assert_array_equal(read_back(png_bytes(view))[0], view)


def test_sixteen_bit_values_above_255_keep_their_high_byte_whatever_the_byte_order():
    labels = np.array([[0, 1, 256, 65535]], np.uint16)
    np.testing.assert_array_equal(read_back(png_bytes(labels))[0], labels)
    np.testing.assert_array_equal(read_back(png_bytes(labels.astype(">u2")))[0], labels)


def test_written_to_a_path_or_a_stream(tmp_path):
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_png(tmp_path / "a.png", pixels)
    stream = io.BytesIO()
    write_png(stream, pixels)
    assert (tmp_path / "a.png").read_bytes() == stream.getvalue() == png_bytes(pixels)


def test_flat_images_compress():
    assert len(png_bytes(np.zeros((512, 512, 3), np.uint8))) < 5_000


@pytest.mark.parametrize("pixels", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 4), np.uint8),
                                    np.zeros((4, 4, 3), np.uint16), np.zeros((0, 4), np.uint8), np.zeros(4, np.uint8)])
def test_what_it_cannot_write_is_refused(pixels):
    with pytest.raises(ValueError, match="a PNG holds"):
        png_bytes(pixels)
