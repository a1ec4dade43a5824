"""Images read by windows: TIFFs of every layout read as the whole-image reader reads them,
which TIFFs go block by block, and uploads kept as stored or read lazily."""
from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage

from nuclei_app import block_sources
from nuclei_app.block_sources import ArraySource, TiffSource, needs_blocks
from nuclei_app.config import ReadLimits
from nuclei_app.imageio import ImageReadError, read_channels
from nuclei_app.planes import PlaneRequest


def write_layout(path, layout: str) -> np.ndarray:
    rng = np.random.default_rng(2)
    grey16 = rng.integers(0, 65535, (300, 410), dtype=np.uint16)
    rgb = rng.integers(0, 255, (300, 410, 3), dtype=np.uint8)
    if layout == "tiled grey 16-bit":
        tifffile.imwrite(path, grey16, tile=(64, 64), compression="zlib")
    elif layout == "stripped RGB":
        tifffile.imwrite(path, rgb, compression="zlib", rowsperstrip=16)
    elif layout == "uncompressed one strip":
        tifffile.imwrite(path, grey16, rowsperstrip=300)
    elif layout == "uncompressed RGBA one strip":
        tifffile.imwrite(path, np.dstack([rgb, rgb[..., :1]]), photometric="rgb", extrasamples=["unassalpha"])
    elif layout == "OME channels, tiled":
        tifffile.imwrite(path, np.moveaxis(rgb, -1, 0), tile=(64, 64), compression="zlib", ome=True,
                         metadata={"axes": "CYX"})
    elif layout == "ImageJ Z stack of channels":
        stack = np.stack([np.moveaxis(rgb[..., :2], -1, 0), np.moveaxis(rgb[..., 1:], -1, 0)])
        tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "ZCYX"})
    elif layout == "16-bit 4 samples, the 4th tagged alpha":  # a fluorescence stack: the 4th is a channel
        tifffile.imwrite(path, np.dstack([grey16, grey16[::-1], grey16[:, ::-1], grey16 // 2]), photometric="rgb",
                         extrasamples=["unassalpha"])
    elif layout == "pages without axes":  # read as channels, whole and by windows alike
        tifffile.imwrite(path, np.moveaxis(rgb, -1, 0)[:2])
    elif layout == "pages without axes, tiled":
        tifffile.imwrite(path, np.moveaxis(rgb, -1, 0), tile=(64, 64), compression="zlib")
    elif layout == "(Y, X, 2) one row per page":   # tifffile's and skimage's default for such an array
        tifffile.imwrite(path, np.ascontiguousarray(rgb[..., :2]))
    elif layout == "pyramid":
        with tifffile.TiffWriter(path, bigtiff=True) as writer:
            writer.write(rgb, subifds=1, tile=(64, 64), compression="zlib", photometric="rgb")
            writer.write(rgb[::2, ::2], subfiletype=1, tile=(64, 64), compression="zlib", photometric="rgb")
    elif layout == "float with NaN":
        values = rng.normal(100, 30, (300, 410)).astype(np.float32)
        values[5, 7] = np.nan
        tifffile.imwrite(path, values, tile=(64, 64))
    return read_channels(path)


@pytest.mark.parametrize("layout", ["tiled grey 16-bit", "stripped RGB", "uncompressed one strip",
                                    "uncompressed RGBA one strip", "OME channels, tiled", "ImageJ Z stack of channels",
                                    "16-bit 4 samples, the 4th tagged alpha", "pages without axes",
                                    "pages without axes, tiled", "(Y, X, 2) one row per page", "pyramid",
                                    "float with NaN"])
def test_windows_read_as_the_whole_image_is_read(tmp_path, layout):
    path = tmp_path / "image.tif"
    expected = write_layout(path, layout)
    read_channels(path, notes=(notes := []))
    with TiffSource(path) as source:
        assert (source.height, source.width, source.channels) == expected.shape
        if layout != "float with NaN":  # their count would take a pass of its own over a huge image
            assert source.notes == notes
        for window in ((0, 300, 0, 410), (37, 211, 101, 409), (299, 300, 0, 1)):
            top, bottom, left, right = window
            np.testing.assert_array_equal(source.read(*window), expected[top:bottom, left:right])


def write_focus_stack(path, layout: str) -> None:
    """Three Z planes of one field, the middle one sharp (the others blurred), two channels."""
    rng = np.random.default_rng(2)
    sharp = rng.integers(0, 60000, (300, 410)).astype(np.float32)
    planes = np.stack([ndimage.gaussian_filter(sharp, 3), sharp, ndimage.gaussian_filter(sharp, 5)]).astype(np.uint16)
    if layout == "ImageJ ZCYX, one strip":
        tifffile.imwrite(path, np.stack([planes, planes // 2], axis=1), imagej=True, metadata={"axes": "ZCYX"})
    else:  # tiled and compressed: read through zarr
        tifffile.imwrite(path, planes, ome=True, tile=(64, 64), compression="zlib", metadata={"axes": "ZYX"})


@pytest.mark.parametrize("layout", ["ImageJ ZCYX, one strip", "OME ZYX, tiled"])
@pytest.mark.parametrize("z, note", [(None, "the first is segmented"), (2, "plane 2 is segmented"),
                                     ("focus", "plane 1, the sharpest"), ("max", "maximum-intensity projection")])
def test_a_z_stack_is_read_by_windows_at_the_plane_chosen_as_whole(tmp_path, layout, z, note):
    path = tmp_path / "stack.tif"
    write_focus_stack(path, layout)
    expected = read_channels(path, plane=PlaneRequest(z))
    with TiffSource(path, plane=PlaneRequest(z)) as source:
        assert (source.height, source.width, source.channels) == expected.shape
        for window in ((0, 300, 0, 410), (37, 211, 101, 409)):
            top, bottom, left, right = window
            np.testing.assert_array_equal(source.read(*window), expected[top:bottom, left:right])
        assert len(source.notes) == 1 and source.notes[0].startswith("a stack of 3 Z planes: ")
        assert note in source.notes[0]


def test_a_huge_stack_s_sharpest_plane_is_judged_on_a_central_window(tmp_path, monkeypatch):
    write_focus_stack(tmp_path / "stack.tif", "OME ZYX, tiled")
    monkeypatch.setattr(block_sources, "FOCUS_WINDOW", 128)
    with TiffSource(tmp_path / "stack.tif", plane=PlaneRequest("focus")) as source:
        assert source.notes == ["a stack of 3 Z planes: plane 1, the sharpest (judged on its central 128x128 px), "
                                "is segmented"]


def test_a_huge_stack_notes_its_time_points_as_the_whole_reader_does(tmp_path):
    path = tmp_path / "tz.ome.tif"
    pixels = (np.arange(2 * 3 * 40 * 50) % 7).reshape(2, 3, 40, 50).astype(np.uint8)   # not one value (its own note)
    tifffile.imwrite(path, pixels, ome=True, tile=(16, 16), metadata={"axes": "TZYX"})
    for plane in (PlaneRequest(), PlaneRequest("max")):
        read_channels(path, notes=(whole := []), plane=plane)
        with TiffSource(path, plane=plane) as source:
            assert source.notes == whole and len(whole) == (1 if plane.z is None else 2), whole
            assert "2 time points" in whole[-1]


def test_a_z_plane_past_the_stack_is_refused_with_its_count(tmp_path):
    write_focus_stack(tmp_path / "stack.tif", "OME ZYX, tiled")
    with pytest.raises(ImageReadError, match=r"stack.tif: the stack has 3 Z planes \(0 to 2\): --z-plane 3 is past"):
        TiffSource(tmp_path / "stack.tif", plane=PlaneRequest(3))


def test_needs_blocks_only_for_tiffs_over_the_limits(tmp_path):
    tifffile.imwrite(tmp_path / "small.tif", np.zeros((100, 120), np.uint8), tile=(64, 64))
    Image.fromarray(np.zeros((100, 120), np.uint8)).save(tmp_path / "small.png")
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    assert not needs_blocks(tmp_path / "small.tif")
    assert needs_blocks(tmp_path / "small.tif", ReadLimits(max_pixels=10_000))
    assert needs_blocks(tmp_path / "small.tif", ReadLimits(max_file_bytes=100))
    assert not needs_blocks(tmp_path / "small.png", ReadLimits(max_pixels=10_000))  # imageio refuses it
    assert not needs_blocks(tmp_path / "broken.tif", ReadLimits(max_pixels=10))     # imageio says why
    assert not needs_blocks(tmp_path / "missing.tif")


def test_a_tiff_in_pieces_too_large_for_a_block_is_refused_with_what_to_do(tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "strip.tif", np.zeros((300, 400), np.uint8), compression="zlib", rowsperstrip=300)
    monkeypatch.setattr(block_sources, "MAX_CHUNK_BYTES", 50_000)
    with pytest.raises(ImageReadError, match="strip.tif.*tiled TIFF"):
        TiffSource(tmp_path / "strip.tif")


def test_an_upload_with_many_bytes_of_pixels_is_read_lazily_even_under_the_pixel_limit(tmp_path, monkeypatch):
    """A small-area TIFF whose decoded pixels exceed block_sources.MAX_STORED_BYTES (float64 stacks)
    is read window by window, not decoded whole; a light one is decoded as stored."""
    stack = np.random.default_rng(0).random((64, 80, 3))  # float64: 122,880 bytes
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, stack, photometric="rgb")
    data = buffer.getvalue()
    with block_sources.upload_source(data, "light.tif", tmp_path) as source:
        assert isinstance(source, ArraySource)
    monkeypatch.setattr(block_sources, "MAX_STORED_BYTES", 100_000)
    with block_sources.upload_source(data, "heavy.tif", tmp_path) as source:
        assert isinstance(source, TiffSource) and (source.height, source.width, source.channels) == (64, 80, 3)
    assert not list(tmp_path.iterdir())  # the upload's copy is removed afterwards


def test_a_read_cut_short_by_an_interrupt_leaves_the_file_to_zarr_s_read_in_flight(tmp_path):
    """A CI run: SIGTERM mid-read, the source closed while zarr's read of the window went on
    in its own thread, which failed ("I/O operation on closed file") and printed a traceback
    after the run had stopped. A completed or failed read closes as before."""
    tifffile.imwrite(tmp_path / "tiled.tif", np.zeros((512, 512), np.uint8), tile=(256, 256))
    source = TiffSource(tmp_path / "tiled.tif")
    source.read(0, 10, 0, 10)
    reader = source._reader

    def interrupted(index):
        raise KeyboardInterrupt

    source._reader = interrupted
    with pytest.raises(KeyboardInterrupt):
        source.read(0, 10, 0, 10)
    source.close()
    assert not source._tif.filehandle.closed
    source._reader = reader
    source.read(0, 10, 0, 10)   # a read that completes
    source.close()
    assert source._tif.filehandle.closed
