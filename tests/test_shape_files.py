"""A block-wise image's ROI set and GeoJSON, written block by block as the nuclei are stitched."""
from __future__ import annotations

import numpy as np
import pandas as pd

from nuclei_app.exports import geojson_bytes, rois_zip_bytes
from nuclei_app.measure import measure_nuclei
from nuclei_app.shape_files import StreamedShapes


def two_blocks() -> np.ndarray:
    labels = np.zeros((40, 60), np.int32)
    labels[5:12, 4:11], labels[20:30, 8:14], labels[6:14, 40:52], labels[25:35, 45:50] = 1, 2, 3, 4
    return labels


def test_nuclei_added_block_by_block_give_the_whole_label_image_s_files(tmp_path):
    """Each block's nuclei in their window's coordinates and numbering; a restart (the blocks
    labelled anew at another diameter) leaves only what follows it."""
    labels = two_blocks()
    table = measure_nuclei(labels, np.ones(labels.shape, np.float32))
    shapes = StreamedShapes(tmp_path, "slide", ("png", "rois", "geojson"))
    shapes.add(labels[:, :30], table[table["nucleus"] <= 2], 1, 0, 0)   # a first labelling, dropped
    shapes.restart()
    left, right = labels[:, :30], np.where(labels[:, 30:] > 0, labels[:, 30:] - 2, 0)
    shapes.add(left, table[table["nucleus"] <= 2], 1, 0, 0)
    shapes.add(right, table[table["nucleus"] > 2], 3, 0, 30)
    paths = shapes.finish()
    shapes.discard()   # after finish: nothing left to remove
    assert paths == {"rois": tmp_path / "slide_rois.zip", "geojson": tmp_path / "slide.geojson"}
    assert paths["geojson"].read_bytes() == geojson_bytes(labels, table)
    assert paths["rois"].read_bytes() == rois_zip_bytes(labels)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slide.geojson", "slide_rois.zip"]


def test_nothing_asked_writes_nothing_and_a_stopped_run_leaves_no_partial_file(tmp_path):
    labels = two_blocks()
    table = measure_nuclei(labels, np.ones(labels.shape, np.float32))
    idle = StreamedShapes(tmp_path, "plain", ("png", "tiff"))
    idle.add(labels, table, 1, 0, 0)
    assert idle.finish() == {} and not list(tmp_path.iterdir())
    stopped = StreamedShapes(tmp_path, "slide", ("geojson",))
    stopped.add(labels, pd.DataFrame(table), 1, 0, 0)
    assert [p.name for p in tmp_path.iterdir()] == [".slide.geojson.partial"]   # hidden while written
    stopped.discard()
    assert not list(tmp_path.iterdir())
