import io

import numpy as np
import pytest
import tifffile
from PIL import Image

from nuclei_app.config import ReadLimits
from nuclei_app.imageio import ImageReadError, read_image, read_labels, write_labels_png

GRADIENT = (np.arange(40 * 50).reshape(40, 50) % 256).astype(np.uint8)


def check_rgb(image, shape=(40, 50)):
    assert image.shape == shape + (3,)
    assert image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0


@pytest.mark.parametrize("mode,suffix", [("L", "png"), ("RGB", "png"), ("RGBA", "png"), ("L", "jpg"),
                                         ("RGB", "jpeg"), ("RGB", "bmp"), ("P", "png"), ("LA", "png")])
def test_reads_pillow_formats(tmp_path, mode, suffix):
    path = tmp_path / f"image.{suffix}"
    Image.fromarray(GRADIENT).convert(mode).save(path)
    image = read_image(path)
    check_rgb(image)
    if suffix in ("png", "bmp"):  # lossless: the grey values come back exactly
        np.testing.assert_allclose(image[..., 0], GRADIENT / 255.0, atol=1e-6)


def test_16bit_png_keeps_its_range(tmp_path):
    values = (GRADIENT.astype(np.uint16) * 200)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    image = read_image(path)
    check_rgb(image)
    np.testing.assert_allclose(image[..., 1], values / 65535.0, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_8_and_16_bit(tmp_path, dtype):
    values = GRADIENT.astype(dtype) * (1 if dtype == np.uint8 else 250)
    path = tmp_path / "image.tif"
    tifffile.imwrite(path, values)
    image = read_image(path)
    check_rgb(image)
    np.testing.assert_allclose(image[..., 2], values / np.iinfo(dtype).max, atol=1e-6)


def test_multipage_tiff_uses_first_page(tmp_path):
    stack = np.stack([GRADIENT, 255 - GRADIENT, GRADIENT // 2])
    path = tmp_path / "stack.tiff"
    with tifffile.TiffWriter(path) as writer:
        for page in stack:
            writer.write(page)
    np.testing.assert_allclose(read_image(path)[..., 0], GRADIENT / 255.0, atol=1e-6)


def test_rgb_and_planar_tiff(tmp_path):
    rgb = np.stack([GRADIENT, GRADIENT // 2, 255 - GRADIENT], axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    for name in ("rgb.tif", "planar.tif"):
        image = read_image(tmp_path / name)
        check_rgb(image)
        np.testing.assert_allclose(image[..., 2], (255 - GRADIENT) / 255.0, atol=1e-6)


def test_float_tiff_is_rescaled(tmp_path):
    tifffile.imwrite(tmp_path / "float.tif", GRADIENT.astype(np.float32) * 10.0 - 3.0)
    image = read_image(tmp_path / "float.tif")
    check_rgb(image)
    assert image.min() == 0.0 and image.max() == pytest.approx(1.0)


def test_reads_bytes_and_file_objects():
    buffer = io.BytesIO()
    Image.fromarray(GRADIENT).save(buffer, format="PNG")
    check_rgb(read_image(buffer.getvalue(), name="upload.png"))
    buffer.seek(0)
    check_rgb(read_image(buffer, name="upload.png"))


@pytest.mark.parametrize("content,expected", [
    (b"", "empty"),
    (b"this is not an image at all", "not a readable image"),
])
def test_bad_files_raise_specific_errors(tmp_path, content, expected):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=expected) as info:
        read_image(path)
    assert "bad.png" in str(info.value)


def test_truncated_png(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8)).save(buffer, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageReadError, match="damaged or truncated"):
        read_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="not found"):
        read_image(tmp_path / "nowhere.png")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (9000, 5000)).save(path)  # 45 Mpx in a few kB
    assert path.stat().st_size < 100_000
    with pytest.raises(ImageReadError, match="megapixels"):
        read_image(path)


def test_pixel_limit_applies_to_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((300, 300), np.uint8))
    with pytest.raises(ImageReadError, match="over the limit"):
        read_image(tmp_path / "big.tif", limits=ReadLimits(max_pixels=10_000))


def test_unsupported_layout_is_explained(tmp_path):
    tifffile.imwrite(tmp_path / "six.tif", np.zeros((40, 50, 12), np.uint8), photometric="minisblack", planarconfig="contig")
    with pytest.raises(ImageReadError, match="unsupported image layout"):
        read_image(tmp_path / "six.tif")


def test_read_labels_binary_mask_becomes_components(tmp_path):
    mask = np.zeros((30, 30), np.uint8)
    mask[2:8, 2:8] = 255
    mask[20:25, 20:28] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    labels = read_labels(tmp_path / "mask.png")
    assert labels.max() == 2 and set(np.unique(labels)) == {0, 1, 2}


def test_label_png_round_trip(tmp_path):
    labels = np.zeros((20, 30), np.int32)
    labels[1:5, 1:5] = 1
    labels[10:15, 10:15] = 300  # beyond 8 bits
    labels[16:19, 2:9] = 2
    write_labels_png(tmp_path / "labels.png", labels)
    assert Image.open(tmp_path / "labels.png").mode.startswith("I;16")
    np.testing.assert_array_equal(read_labels(tmp_path / "labels.png"), labels)


@pytest.mark.parametrize("layout", ["CYX", "YXC", "ZCYX"])
def test_channel_stacks_keep_every_channel(tmp_path, layout):
    from nuclei_app.imageio import read_channels

    planes = np.stack([np.full((20, 30), 1000 * (c + 1), np.uint16) for c in range(4)])  # (C, Y, X)
    data = {"CYX": planes, "YXC": np.moveaxis(planes, 0, -1), "ZCYX": np.stack([planes, planes * 0])}[layout]
    kwargs = {"photometric": "minisblack", "metadata": {"axes": layout}}
    if layout == "YXC":
        kwargs["planarconfig"] = "contig"
    tifffile.imwrite(tmp_path / "stack.tif", data, **kwargs)
    channels = read_channels(tmp_path / "stack.tif")
    assert channels.shape == (20, 30, 4)
    np.testing.assert_allclose(channels[0, 0], [1000 * (c + 1) / 65535 for c in range(4)], rtol=1e-5)


def test_png_decompression_bomb_is_a_clear_error():
    buffer = io.BytesIO()
    Image.new("1", (40000, 40000)).save(buffer, "PNG")  # a few kB on disk, 1.6 gigapixels
    with pytest.raises(ImageReadError, match="bomb.png: the header declares more than 40 megapixels"):
        read_image(buffer.getvalue(), name="bomb.png")


def test_many_channel_tiff_is_refused_from_its_header(tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "wide.tif", np.zeros((300, 300, 64), np.uint8), photometric="minisblack",
                     planarconfig="contig", compression="zlib")

    def no_decoding(*args, **kwargs):
        raise AssertionError("pixels were decoded before the layout was checked")
    monkeypatch.setattr(tifffile.TiffPage, "asarray", no_decoding)
    with pytest.raises(ImageReadError, match="unsupported image layout"):
        read_image(tmp_path / "wide.tif")
