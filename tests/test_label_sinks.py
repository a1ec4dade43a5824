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
