"""One huge image on a Dask cluster: its blocks segmented by the workers.

The client plans the image exactly as in-process (``blocks.segment_source``: channel,
stretch, diameter and its check) and stitches: ids, nuclei on block borders and measurements
need the blocks in order, and cost little next to the network. The workers do the costly
part. Each reads its block's window from the file itself (the path must be reachable from the
workers, as for whole images), runs the network and post-processing with the image's plan and
sends back only the window's labels. A few blocks per worker are in flight at a time, so the
client's memory is bounded by blocks, not by the image. A worker that dies has its block rerun
by the scheduler; a block's labels are the same wherever they are computed, so the result is
the in-process one.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from .block_network import BlockJob, ScaleCheck, job_segmenter
from .block_sources import ArraySource, BlockSource, TiffSource
from .config import PostprocessSettings
from .imageio import read_channels
from .planes import PlaneRequest
from .stitching import Block

# Blocks in flight per worker: one computing, one queued, so no worker waits for the client.
BLOCKS_AHEAD_PER_WORKER = 2


@dataclass(frozen=True)
class SourceSpec:
    """How a worker opens the image, as the client did."""
    path: str    # absolute
    given: str   # as the user gave it: messages name it so
    lazy: bool   # a TIFF over the in-memory limit, read by windows; otherwise read whole, once
    plane: PlaneRequest = PlaneRequest()  # a Z-stack's plane (planes.py)


def open_source(spec: SourceSpec) -> BlockSource:
    if spec.lazy:
        return TiffSource(spec.path, spec.given, spec.plane)
    return ArraySource(read_channels(spec.path, name=spec.given, plane=spec.plane))


@dataclass
class BlockOutcome:
    labels: np.ndarray | None           # the window's labels (the smallest unsigned type that holds them)
    diameters: np.ndarray | None = None  # the scale check's nuclei, when asked
    problem: str = ""                    # why the block could not be segmented (the image's fault)


# --- worker ----------------------------------------------------------------------------------

# The image a worker is working on, opened once for all its blocks (a whole image read once).
_open: dict[SourceSpec, BlockSource] = {}
_open_lock = threading.Lock()


def worker_source(spec: SourceSpec) -> BlockSource:
    with _open_lock:
        if spec not in _open:
            for other in list(_open):  # one image at a time: the previous one is done
                close = getattr(_open.pop(other), "close", None)
                if close:
                    close()
            _open[spec] = open_source(spec)
        return _open[spec]


def segment_block_on_worker(spec: SourceSpec, model_source: str, job: BlockJob, block: Block,
                            check_settings: PostprocessSettings | None, precision: str = "float32",
                            engine: str = "auto") -> BlockOutcome:
    """One block, on a worker. Raises only when the worker can't work (WorkerSetupError)."""
    from .batch import failure_status
    from .distributed import PAUSE_ENV_VAR, worker_model

    model = worker_model(model_source)
    model.set_precision(precision)
    model.set_engine(engine)
    try:
        source = worker_source(spec)
        check = ScaleCheck(check_settings) if check_settings is not None else None
        labels = job_segmenter(model, job, check)(source.read(*block.window), block)
    except Exception as error:  # the image's failure (a damaged tile): the client fails the image
        return BlockOutcome(None, problem=failure_status(error))
    time.sleep(float(os.environ.get(PAUSE_ENV_VAR) or 0))  # tests: a block busy long enough to kill its worker
    diameters = np.concatenate(check.diameters) if check is not None and check.diameters else None
    return BlockOutcome(compact(labels), diameters)


def compact(labels: np.ndarray) -> np.ndarray:
    """Labels in the smallest unsigned type: a quarter of the bytes on the wire, usually."""
    largest = int(labels.max(initial=0))
    for dtype in (np.uint8, np.uint16, np.uint32):
        if largest <= np.iinfo(dtype).max:
            return labels.astype(dtype)
    return labels


# --- client ----------------------------------------------------------------------------------

class BlockFailed(ValueError):
    """A block of the image could not be segmented: the image fails, the run goes on."""


class ClusterBlocks:
    """A ``blocks.BlockRunner`` whose blocks run on the workers of a Dask ``client``."""

    def __init__(self, client, spec: SourceSpec, model_source: str, run_id: str, retries: int = 1,
                 precision: str = "float32", engine: str = "auto"):
        self.client, self.spec, self.model_source = client, spec, model_source
        self.retries, self.precision, self.engine = retries, precision, engine
        # Keys unique to this image: the scheduler answers a key it still holds with its old
        # result, and several images of one run each number their blocks from 1.
        self.key_prefix = f"nuclei-block-{run_id}-{uuid.uuid4().hex[:8]}"
        self.submitted = 0

    def ahead(self) -> int:
        return BLOCKS_AHEAD_PER_WORKER * max(1, len(self.client.nthreads()))

    def __call__(self, job: BlockJob, blocks: Sequence[Block], check: ScaleCheck | None) -> Iterator[np.ndarray]:
        """The blocks' labels in order, with at most ``ahead()`` blocks submitted and not yet
        taken; the rest are cancelled if the caller stops early (a failed image)."""
        pending: deque = deque()
        upcoming = iter(blocks)
        check_settings = check.settings if check is not None else None

        def submit_next() -> None:
            for block in upcoming:
                self.submitted += 1
                pending.append(self.client.submit(
                    segment_block_on_worker, self.spec, self.model_source, job, block, check_settings, self.precision,
                    self.engine,
                    key=f"{self.key_prefix}-{self.submitted}", retries=self.retries, pure=False))
                return

        try:
            for _ in range(self.ahead()):
                submit_next()
            while pending:
                future = pending.popleft()
                submit_next()
                outcome = self.result_of(future)
                future.release()
                if outcome.labels is None:
                    raise BlockFailed(outcome.problem)
                if check is not None and outcome.diameters is not None:
                    check.diameters.append(outcome.diameters)
                yield outcome.labels.astype(np.int32)  # as the in-process segmenter's
        finally:
            if pending:
                try:
                    self.client.cancel(list(pending))
                except (RuntimeError, OSError):  # the client is closing too: nothing left to stop
                    pass

    @staticmethod
    def result_of(future) -> BlockOutcome:
        """The block's outcome; a block that killed every worker it ran on fails its image
        (BlockFailed), anything else that is not the image's stops the run (ClusterError)."""
        from distributed import KilledWorker

        from .distributed import ClusterError, killed_message, task_error

        try:
            return future.result()
        except KilledWorker as error:
            raise BlockFailed(killed_message(error)) from None
        except Exception as error:  # noqa: BLE001 - sorted into the cluster's failures
            if future.cancelled():
                raise ClusterError("the Dask scheduler dropped the work (was it restarted, or the connection "
                                   "lost?).") from None
            raise task_error(error) from None
