import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from nuclei_app.config import ReadLimits
from nuclei_app.imageio import ImageReadError, read_channels, read_image
from nuclei_app.planes import PlaneRequest

from .awkward_files import bmp_bomb, encode, gif_bomb, png_bomb, tiff, tiff_bomb, webp_bomb, write_corpus

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


def test_a_tiff_header_followed_by_garbage_is_called_damaged(tmp_path):
    """A trial: it said "the TIFF file has no pages"."""
    path = tmp_path / "corrupt.tif"
    path.write_bytes(b"II*\x00" + np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8).tobytes())
    with pytest.raises(ImageReadError, match="no image after it: the file is damaged or truncated"):
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


def test_a_grey_image_saved_as_colour_reads_as_its_one_channel(tmp_path):
    """RGB, RGBA and a palette GIF whose colours are copies of one grey: one channel, as the
    grey file; a colour image differing in one pixel keeps its three."""
    grey = np.random.default_rng(3).integers(0, 256, (24, 32)).astype(np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "rgb.png")
    Image.fromarray(np.stack([grey] * 3 + [np.full_like(grey, 255)], axis=-1)).save(tmp_path / "rgba.png")
    Image.fromarray(grey).convert("P").save(tmp_path / "grey.gif")
    for name in ("rgb.png", "rgba.png", "grey.gif"):
        read = read_channels(tmp_path / name)
        assert read.shape == (24, 32, 1), name
        np.testing.assert_allclose(read[..., 0], grey / 255, atol=1e-6, err_msg=name)
    colour = np.stack([grey] * 3, axis=-1)
    colour[5, 7, 2] ^= 1
    Image.fromarray(colour).save(tmp_path / "colour.png")
    assert read_channels(tmp_path / "colour.png").shape == (24, 32, 3)
    assert read_image(tmp_path / "rgb.png").shape == (24, 32, 3)  # the network's RGB, as for a grey file


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


# --- awkward files: every one read, or refused with a reason that names it ----------------

# Refused by the folder scan (inputs.collect_images), not by the reader.
SCAN_REASONS = ("broken symbolic link", "not valid UTF-8")


def reader_cases() -> list:
    """The corpus's cases for the reader alone (the corpus is deterministic: written once here
    for the list, once more by the fixture for the files)."""
    with tempfile.TemporaryDirectory() as folder:
        return [case for case in write_corpus(folder) if case.outcome != "ignored" and case.reason not in SCAN_REASONS]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("awkward")
    write_corpus(folder)
    return folder


@pytest.mark.parametrize("case", reader_cases(), ids=lambda case: case.name)
def test_every_awkward_file_is_read_or_refused_with_a_reason(case, corpus):
    path = corpus / case.name
    try:
        channels = read_channels(path)
    except ImageReadError as error:
        assert case.outcome in ("error", "either"), str(error)
        assert case.reason in error.problem and str(error) == f"{path}: {error.problem}"
        assert str(path) not in error.problem  # the name is said once, by str(error) only
        return
    assert case.outcome in ("ok", "either")
    assert channels.shape[:2] == case.size and channels.dtype == np.float32
    assert np.isfinite(channels).all() and 0.0 <= channels.min() and channels.max() <= 1.0


@pytest.mark.parametrize("name,data", [
    ("bomb.png", png_bomb(40_000, 40_000)), ("bomb_45mpx.png", png_bomb(9000, 5000)),
    ("bomb.tif", tiff_bomb(40_000, 40_000)), ("screen.gif", gif_bomb((65535, 65535), (1, 1))),
    ("frame.gif", gif_bomb((10, 10), (60000, 60000))), ("bomb.bmp", bmp_bomb(40_000, 40_000)),
    ("bomb.webp", webp_bomb(16383, 16383)),
])
def test_decompression_bombs_are_refused_from_the_header(name, data):
    assert len(data) < 1000
    with pytest.raises(ImageReadError, match=f"^{name}: .*40 megapixels.*decompression bomb"):
        read_image(data, name=name)


@pytest.mark.parametrize("height,width", [(1, 1), (1, 64), (64, 1)])
def test_images_under_two_pixels_wide_are_refused(height, width):
    data = tiff(np.full((height, width), 100, np.uint8))
    with pytest.raises(ImageReadError, match=f"only {width}x{height} pixels; at least 2x2 are needed"):
        read_image(data, name="strip.tif")


@pytest.mark.parametrize("height,width", [(2, 2), (2, 64), (64, 2)])
def test_two_pixel_strips_are_read(height, width):
    assert read_image(encode(np.full((height, width), 100, np.uint8), "PNG"), name="s.png").shape == (height, width, 3)


def test_gif_and_webp_give_their_first_frame():
    frames = [Image.fromarray(GRADIENT), Image.fromarray(255 - GRADIENT)]
    for format in ("GIF", "WEBP"):
        options = {"lossless": True} if format == "WEBP" else {}
        data = encode(frames[0], format, save_all=True, append_images=frames[1:], **options)
        image = read_image(data, name=f"movie.{format.lower()}")
        check_rgb(image)
        np.testing.assert_allclose(image[..., 0], GRADIENT / 255.0, atol=2 / 255)


def test_unreadable_files_name_every_supported_format():
    with pytest.raises(ImageReadError, match="PNG, JPEG, TIFF, BMP, GIF, WebP"):
        read_image(b"just text", name="notes.png")


def test_damaged_deflate_tiff_is_a_read_error():
    data = tiff(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8), compression="zlib")
    with pytest.raises(ImageReadError, match="cut.tif: the file is damaged or truncated"):
        read_image(data[: len(data) // 2], name="cut.tif")


def test_floats_with_nan_and_infinities_stretch_between_the_finite_extremes():
    values = np.array([[np.nan, -np.inf, 2.0], [4.0, 6.0, np.inf]], np.float32)
    np.testing.assert_allclose(read_channels(tiff(values), name="f.tif")[..., 0], [[0, 0, 0], [0.5, 1, 1]])
    huge = np.array([[-1e308, 0.0], [1e308, 1e308]])
    np.testing.assert_allclose(read_channels(tiff(huge), name="f.tif")[..., 0], [[0, 0.5], [1, 1]])


@pytest.mark.parametrize("values", [np.full((8, 8), np.nan, np.float32), np.full((8, 8), 7.5, np.float32),
                                    np.full((8, 8), 40000, np.uint16), np.zeros((8, 8, 3), np.float64)])
def test_constant_images_read_without_dividing_by_zero(values):
    data = tiff(values, photometric="rgb" if values.ndim == 3 else "minisblack")
    with np.errstate(all="raise"):
        channels = read_channels(data, name="flat.tif")
    assert np.isfinite(channels).all() and channels.min() == channels.max()


def test_32_bit_integers_stretch_by_their_own_range():
    values = (GRADIENT.astype(np.uint32) * 3)  # 0..765: a sliver of the uint32 range
    channels = read_channels(tiff(values), name="wide.tif")
    np.testing.assert_allclose(channels[..., 0], values / values.max(), atol=1e-6)


def test_cmyk_tiff_becomes_rgb():
    cyan = np.zeros((40, 50, 4), np.uint8)
    cyan[..., 0] = 255
    image = read_image(tiff(cyan, photometric="separated"), name="cmyk.tif")
    np.testing.assert_allclose(image[0, 0], [0, 1, 1])


def test_alpha_is_dropped_from_tiffs():
    grey_alpha = np.stack([GRADIENT, np.zeros_like(GRADIENT)], axis=-1)
    channels = read_channels(tiff(grey_alpha, photometric="minisblack", extrasamples=["unassalpha"]), name="ga.tif")
    assert channels.shape == (40, 50, 1)


def test_small_planar_rgb_tiff_is_read_by_its_planar_config():
    planar = np.stack([np.full((4, 50), v, np.uint8) for v in (10, 20, 30)])  # (S, Y, X) with Y < 8
    image = read_image(tiff(planar, photometric="rgb", planarconfig="separate"), name="planar.tif")
    assert image.shape == (4, 50, 3)
    np.testing.assert_allclose(image[0, 0], np.array([10, 20, 30]) / 255)


def test_error_carries_name_and_problem_apart():
    import pickle

    with pytest.raises(ImageReadError) as info:
        read_image(b"", name="upload.png")
    error = info.value
    assert (error.name, error.problem) == ("upload.png", "the file is empty.")
    assert str(error) == str(pickle.loads(pickle.dumps(error))) == "upload.png: the file is empty."
    plain = ImageReadError("a whole message")  # the one-argument form still works
    assert (plain.name, plain.problem) == (None, "a whole message")
    assert str(pickle.loads(pickle.dumps(plain))) == "a whole message"


def test_links_and_folders_are_explained(tmp_path):
    (tmp_path / "gone.png").symlink_to(tmp_path / "moved.png")
    with pytest.raises(ImageReadError, match="broken symbolic link"):
        read_image(tmp_path / "gone.png")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path / "folder.png")


def test_plain_multi_page_and_four_sample_stacks_keep_every_channel(tmp_path):
    planes = np.stack([np.full((30, 40), 1000 * (c + 1), np.uint16) for c in range(4)])
    planes[2, 10:20, 10:20] = 60000
    planes[3, 25:28, 30:35] = 30000  # every channel has something in it (a constant 4th sample is alpha)
    tifffile.imwrite(tmp_path / "pages.tif", planes, photometric="minisblack")  # tifffile's 'QYX'
    tifffile.imwrite(tmp_path / "samples.tif", np.moveaxis(planes, 0, -1))      # RGB + 'alpha' by default
    for name in ("pages.tif", "samples.tif"):
        channels = read_channels(tmp_path / name)
        assert channels.shape == (30, 40, 4), name
        assert channels[15, 15, 2] == pytest.approx(60000 / 65535) and channels[0, 0, 3] == pytest.approx(4000 / 65535)
    z_stack = np.zeros((20, 30, 40), np.uint8)
    tifffile.imwrite(tmp_path / "z.tif", z_stack, photometric="minisblack")
    assert read_channels(tmp_path / "z.tif").shape == (30, 40, 1)  # 20 planes: a Z-stack, first plane


@pytest.mark.parametrize("count", [2, 5, 8])
def test_a_yxc_array_saved_one_row_per_page_reads_as_its_channels(tmp_path, count):
    """A trial: tifffile's default (and scikit-image's imsave) writes a (Y, X, 2) array as 30
    pages of 40x2 pixels; it was read as 30 planes, the first segmented as a 40x2 strip."""
    image = np.random.default_rng(count).integers(0, 65535, (30, 40, count), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "yxc.tif", image)
    with tifffile.TiffFile(tmp_path / "yxc.tif") as tif:
        assert tif.series[0].axes == "QYX" and len(tif.pages) == 30   # as the trial's file
    notes = []
    channels = read_channels(tmp_path / "yxc.tif", notes=notes)
    assert channels.shape == (30, 40, count) and np.allclose(channels, image / 65535)
    assert any(f"pages {count} px wide, one per row: read as an image of {count} channels" in n for n in notes)
    tifffile.imwrite(tmp_path / "z.tif", np.zeros((9, 30, 40), np.uint8))   # 9 pages of 30x40: a stack still
    assert read_channels(tmp_path / "z.tif").shape == (30, 40, 1)


def png_48bit(rgb16: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow writes none), unfiltered rows."""
    import struct
    import zlib

    height, width, _ = rgb16.shape
    rows = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_16_bit_colour_pngs_are_read_at_8_bits_only_where_that_keeps_the_image():
    """Pillow reads a 48-bit PNG's high bytes: fine for values spread over 16 bits, nuclei
    reduced to a few grey levels for 12-bit camera data; those are refused with what to do."""
    rng = np.random.default_rng(0)
    full = rng.integers(0, 65536, (40, 50, 3)).astype(np.uint16)
    notes = []
    read = read_channels(png_48bit(full), "full.png", notes=notes)
    assert read.shape == (40, 50, 3) and np.abs(read - full / 65535).max() <= 1 / 255 + 1e-6
    assert notes == ["a 16-bit colour PNG, read at 8 bits (a 16-bit TIFF keeps every bit)"]
    narrow = rng.integers(30000, 34000, (40, 50, 3)).astype(np.uint16)  # high values, little contrast: kept
    assert read_channels(png_48bit(narrow), "narrow.png").shape == (40, 50, 3)
    dim = rng.integers(0, 4096, (40, 50, 3)).astype(np.uint16)  # 12-bit data in a 16-bit PNG
    with pytest.raises(ImageReadError, match="16-bit colour PNG.*below 8192.*keeps 16 grey levels.*16-bit TIFF") as error:
        read_channels(png_48bit(dim), "dim.png")
    assert error.value.name == "dim.png"


def varied(shape, dtype) -> np.ndarray:
    """Pixels that are not all one value (an image of one value gets a note of its own)."""
    return (np.arange(np.prod(shape)) % 7).reshape(shape).astype(dtype)


def test_how_a_stack_or_animation_was_read_is_noted(tmp_path):
    """A Z-stack, a time series or an animation gives its first plane or frame, and says so;
    a few pages without axes are read as channels, and that guess is told (a user test's
    5-plane Z-stack); a plain image or a channel stack gives no note."""
    tifffile.imwrite(tmp_path / "z.tif", varied((6, 30, 40), np.uint8), imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(tmp_path / "tzc.tif", varied((3, 2, 2, 30, 40), np.uint16), imagej=True,
                     metadata={"axes": "TZCYX"})
    tifffile.imwrite(tmp_path / "pages.tif", varied((20, 30, 40), np.uint8), photometric="minisblack")
    tifffile.imwrite(tmp_path / "few_pages.tif", varied((5, 30, 40), np.uint8), photometric="minisblack")
    tifffile.imwrite(tmp_path / "channels.tif", varied((3, 30, 40), np.uint16), imagej=True, metadata={"axes": "CYX"})
    frames = [Image.fromarray(varied((30, 40), np.uint8) + v) for v in (0, 90, 180)]
    frames[0].save(tmp_path / "movie.gif", save_all=True, append_images=frames[1:])
    Image.fromarray(varied((30, 40), np.uint8)).save(tmp_path / "plain.png")
    expected = {"z.tif": "a stack of 6 Z planes: the first is segmented",
                "tzc.tif": "a stack of 3 time points x 2 Z planes: the first is segmented",
                "pages.tif": "a stack of 20 planes: the first is segmented",
                "few_pages.tif": "5 pages and no axes in the file: read as 5 channels",   # the guess, told
                "movie.gif": "3 frames: the first is segmented", "channels.tif": None, "plain.png": None}
    for name, note in expected.items():
        notes = []
        read_channels(tmp_path / name, notes=notes)
        assert notes == [] if note is None else (len(notes) == 1 and notes[0].startswith(note)), (name, notes)


def test_a_z_stack_gives_the_plane_chosen_by_number_sharpness_or_projection(tmp_path):
    """ImageJ (Z, C, Y, X), (Z, Y, X) and RGB (Z, Y, X, S) stacks; time points still give
    their first, and say so."""
    from scipy import ndimage

    rng = np.random.default_rng(1)
    sharp = rng.integers(0, 255, (30, 40)).astype(np.float32)
    planes = np.stack([ndimage.gaussian_filter(sharp, 2), sharp, ndimage.gaussian_filter(sharp, 4)]).astype(np.uint8)
    tifffile.imwrite(tmp_path / "zyx.tif", planes, imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(tmp_path / "tzcyx.tif", np.stack([np.stack([planes, 255 - planes], axis=1)] * 2), imagej=True,
                     metadata={"axes": "TZCYX"})
    # Channels that differ: identical ones read as grey (grey_if_copies).
    tifffile.imwrite(tmp_path / "rgb.tif", np.stack([planes, 255 - planes, planes], axis=-1), imagej=True, metadata={"axes": "ZYXS"})
    for name, channels in (("zyx.tif", 1), ("tzcyx.tif", 2), ("rgb.tif", 3)):
        for z, index in ((1, 1), (2, 2), ("focus", 1)):
            notes = []
            read = read_channels(tmp_path / name, notes=notes, plane=PlaneRequest(z))
            assert read.shape == (30, 40, channels), name
            np.testing.assert_allclose(read[..., 0], planes[index] / 255, atol=1e-6, err_msg=f"{name} {z}")
            assert notes[0].startswith(f"a stack of 3 Z planes: plane {index}"), notes
        notes = []
        projection = read_channels(tmp_path / name, notes=notes, plane=PlaneRequest("max"))
        np.testing.assert_allclose(projection[..., 0], planes.max(axis=0) / 255, atol=1e-6)
        assert notes[0] == "a stack of 3 Z planes: their maximum-intensity projection is segmented"
        assert notes[1:] == ([] if name != "tzcyx.tif" else
                             ["a stack of 2 time points: the first is segmented; save the plane you want as its own "
                              "file to segment another"])
    notes = []
    read_channels(tmp_path / "zyx.tif", notes=notes)   # the default: the first, and how to choose another
    assert notes == ["a stack of 3 Z planes: the first is segmented; another Z plane, the sharpest or their maximum "
                     "projection can be chosen (--z-plane N, focus or max)"]
    with pytest.raises(ImageReadError, match=r"zyx.tif: the stack has 3 Z planes \(0 to 2\): --z-plane 3 is past"):
        read_channels(tmp_path / "zyx.tif", plane=PlaneRequest(3))
    read_channels(tmp_path / "zyx.tif", notes=(explicit := []), plane=PlaneRequest(0))
    assert explicit == ["a stack of 3 Z planes: plane 0 is segmented"]   # asked: no advice
    plain = tmp_path / "plain.png"
    Image.fromarray(planes[0]).save(plain)
    assert read_channels(plain, notes=(none := []), plane=PlaneRequest("max")).shape == (30, 40, 1)
    assert none == []   # the only plane is the sharpest and the maximum: nothing to say
    read_channels(plain, notes=(past := []), plane=PlaneRequest(2))
    assert past == ["no Z planes in the file: --z-plane 2 does not apply"]


def test_a_chosen_plane_is_read_plane_by_plane_within_one_plane_s_limits(tmp_path):
    """Review: a plane number, the sharpest or the projection decoded the whole stack, and a
    stack whose first plane reads was refused as too large once a plane was chosen."""
    stack = np.random.default_rng(3).integers(0, 255, (30, 20, 20), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "deep.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    small = ReadLimits(max_pixels=1000)   # 400 px a plane; the stack holds 12,000 values
    for z, expected in ((None, stack[0]), (0, stack[0]), (17, stack[17]), ("max", stack.max(axis=0))):
        read = read_channels(tmp_path / "deep.tif", limits=small, plane=PlaneRequest(z))
        np.testing.assert_allclose(read[..., 0], expected / 255, atol=1e-6, err_msg=str(z))
    assert read_channels(tmp_path / "deep.tif", limits=small, plane=PlaneRequest("focus")).shape == (20, 20, 1)


def test_an_rgba_z_stack_drops_its_alpha_whichever_plane_is_chosen(tmp_path):
    """Review: with a plane chosen, the alpha of an RGBA stack was kept as a 4th channel (an H&E
    stack then read as fluorescence); the first plane and the block-wise reader dropped it."""
    from nuclei_app.block_sources import TiffSource

    rng = np.random.default_rng(4)
    rgba = rng.integers(0, 255, (3, 30, 40, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    tifffile.imwrite(tmp_path / "rgba.ome.tif", rgba, ome=True, photometric="rgb", extrasamples=["unassalpha"],
                     metadata={"axes": "ZYXS"})
    for z in (None, 1, "focus", "max"):
        read = read_channels(tmp_path / "rgba.ome.tif", plane=PlaneRequest(z))
        assert read.shape == (30, 40, 3), z
        with TiffSource(tmp_path / "rgba.ome.tif", plane=PlaneRequest(z)) as source:
            np.testing.assert_array_equal(source.read(0, 30, 0, 40), read)
