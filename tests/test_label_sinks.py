"""Labels written and read back by windows, and the label TIFF streamed from disk."""
from __future__ import annotations

import numpy as np
import tifffile

from nuclei_app.label_sinks import DiskSink, label_dtype, strided_labels, write_label_tiff

from .test_stitching import disks_on_borders


def test_label_tiff_is_tiled_and_streamed_from_disk(tmp_path):
    labels = disks_on_borders((1100, 700), 256, seed=4)
    sink = DiskSink(tmp_path / "labels.u32", 1100, 700)
    sink.write(0, 0, labels[:600])
    sink.write(600, 0, labels[600:])
    assert np.array_equal(sink.read(100, 900, 50, 650), labels[100:900, 50:650])
    assert np.array_equal(strided_labels(sink, 1100, 700, 3), labels[::3, ::3])
    path = write_label_tiff(tmp_path / "x_labels.tif", sink, 1100, 700, int(labels.max()))
    sink.close()
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        assert page.is_tiled and page.dtype == np.uint16 and (page.tilelength, page.tilewidth) == (512, 512)
        assert np.array_equal(page.asarray(), labels)
    assert not list(tmp_path.glob("*.partial"))
    assert label_dtype(65535) == np.uint16 and label_dtype(65536) == np.uint32


def test_a_large_label_tiff_carries_its_reduced_levels(tmp_path):
    """Nearest-neighbour levels as SubIFDs (napari and tifffile read them as a pyramid); the
    full-resolution page first, as every reader expects; each level calibrated for its size."""
    from nuclei_app.calibration import PixelSize, read_pixel_size
    from nuclei_app.label_sinks import pyramid_strides

    labels = disks_on_borders((2300, 1100), 256, seed=5)
    sink = DiskSink(tmp_path / "labels.u32", 2300, 1100)
    sink.write(0, 0, labels)
    path = write_label_tiff(tmp_path / "x_labels.tif", sink, 2300, 1100, int(labels.max()), PixelSize(0.5, "given"))
    sink.close()
    assert pyramid_strides(2300, 1100) == [2] and pyramid_strides(1100, 700) == []
    assert pyramid_strides(20000, 20000) == [2, 4, 8, 16]
    with tifffile.TiffFile(path) as tif:
        levels = tif.series[0].levels
        assert [level.shape for level in levels] == [(2300, 1100), (1150, 550)]
        assert np.array_equal(levels[0].asarray(), labels) and np.array_equal(levels[1].asarray(), labels[::2, ::2])
        assert len(tif.pages) == 1   # one image (the level is a SubIFD): Fiji opens one plane
        reduced = levels[1].keyframe.tags["XResolution"].value
        assert reduced[0] / reduced[1] == 1e4 / 1.0   # 1 µm pixels at half the size
    assert read_pixel_size(path.read_bytes()).size.um == 0.5
