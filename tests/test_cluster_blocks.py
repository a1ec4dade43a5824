"""The pieces of a huge image's cluster run that need no cluster of processes: the labels'
wire format, the worker's one open image, and a block whose file fails on the worker."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("distributed", reason="Dask (distributed) is not installed: pip install -r requirements-cli.txt")

from nuclei_app import cluster_blocks  # noqa: E402
from nuclei_app.blocks import Block  # noqa: E402
from nuclei_app.cluster_blocks import BlockFailed, ClusterBlocks, SourceSpec, compact, worker_source  # noqa: E402
from nuclei_app.distributed import cluster_model_source  # noqa: E402

from .test_batch import write_image  # noqa: E402


@pytest.mark.parametrize("largest, dtype", [(0, np.uint8), (255, np.uint8), (256, np.uint16), (70000, np.uint32)])
def test_labels_travel_in_the_smallest_type_that_holds_them(largest, dtype):
    labels = np.zeros((4, 5), np.int32)
    labels[1, 2] = largest
    packed = compact(labels)
    assert packed.dtype == dtype and np.array_equal(packed, labels)


def test_a_worker_opens_each_image_once_and_closes_the_previous(tmp_path):
    first, second = write_image(tmp_path / "a.tif"), write_image(tmp_path / "b.tif", seed=1)
    spec_a = SourceSpec(str(first), "a.tif", lazy=True)
    source = worker_source(spec_a)
    assert worker_source(spec_a) is source
    other = worker_source(SourceSpec(str(second), "b.tif", lazy=False))
    assert other is not source and list(cluster_blocks._open) == [SourceSpec(str(second), "b.tif", lazy=False)]
    assert source._tif.filehandle.closed  # the previous image's file is not held open


def test_a_block_that_fails_on_a_worker_fails_its_image_with_the_reason(tiny_model, tmp_path):
    from distributed import Client, LocalCluster

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    block = Block(0, 64, 0, 64, (0, 64, 0, 64))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client:
        runner = ClusterBlocks(client, SourceSpec(str(broken), "broken.png", lazy=False),
                               cluster_model_source(tiny_model), run_id="test")
        with pytest.raises(BlockFailed, match="damaged"):
            list(runner(None, [block, block, block], None))
        assert runner.submitted == 3


def test_each_image_s_blocks_have_keys_of_their_own():
    """A scheduler answers a key it still holds with the old result: the second image of a
    run must never reuse the first one's block keys."""
    first = ClusterBlocks(None, SourceSpec("/a.tif", "a.tif", lazy=True), "model", run_id="run1")
    second = ClusterBlocks(None, SourceSpec("/b.tif", "b.tif", lazy=True), "model", run_id="run1")
    assert first.key_prefix != second.key_prefix and "run1" in first.key_prefix
