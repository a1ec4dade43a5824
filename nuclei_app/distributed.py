"""The batch on a Dask cluster: ``--workers N`` (a local cluster) or ``--scheduler ADDRESS``.

The client (the CLI's process) finds the images and names their outputs exactly as the
in-process run does (``inputs.collect_images``, ``inputs.output_names``), submits one task per
image, and records each image's rows in ``measurements.csv`` and ``summary.csv`` as its
result arrives (``records.RunRecord``, so ``--skip-existing`` resumes a cluster run too; for an
output URL, which can't be appended to, both files are written whole at the end). Each task
runs on a worker: it loads the model once per worker process (from the source *string*: a folder path or
``hf://owner/repo@commit``, resolved through the worker's own cache), segments the image, writes
the image's files into the output folder and sends back only its measurement table and
summary row.

Why the run loses nothing and writes nothing twice:

- an image's own failure (unreadable file, bad channel, a bug) is caught in the task and comes
  back as a failed summary row, exactly as in-process: the scheduler never retries a
  deterministic failure;
- a worker that dies (killed, out of memory) has its tasks rerun elsewhere by the scheduler,
  up to ``distributed.scheduler.allowed-failures`` times (Dask's default: 3); an image that
  kills that many workers is reported as failed and the run goes on;
- every file is written whole or not at all, and a rerun task writes the same bytes to the
  same names; a killed worker's temporary files are removed at the end (``output_folder``);
- results are collected once per image (``as_completed``), whichever attempt produced them.

Importable without Dask or fsspec: they are imported only when a cluster run starts.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence, TextIO

import pandas as pd

from .batch import (DISK_FULL_STOP, BatchResult, ImageRequest, describe_scale, failure_status, finish_run, for_image,
                    huge_written, image_files, is_disk_full, is_huge, noted, plane_request, put_in_order, put_on_record,
                    read_input, report_input_notes, report_removed, segment_channels, settings_text, start_run, stop)
from .diameter_check import image_notes
from .inputs import collect_images
from .model import ModelLoadError, NucleiModel, model_digest
from .output_folder import (local_folder, output_url, remove_leftovers, run_record, staged_output,
                            write_files)
from .progress import Progress
from .records import summary_row
from .sources import HF_PREFIX, parse_hub_source, resolve_model
from .wording import plural

# A task raises only for what is not the image's fault (the model unusable on that worker, a
# download that failed): one more try, possibly on another worker, before the run stops.
TASK_RETRIES = 1
# How long to try reaching a scheduler before saying it is unreachable.
CONNECT_TIMEOUT = "20s"
# Tests only: seconds a worker waits between writing an image's temporary files and renaming
# them, or before returning a block's labels, so that a test can kill it mid-task.
PAUSE_ENV_VAR = "NUCLEI_TEST_TASK_DELAY"


class ClusterError(RuntimeError):
    """The cluster can't be used (Dask missing, scheduler unreachable, workers that can't load
    the model or this project); the message is one line for the user. The CLI exits 2."""


class WorkerSetupError(RuntimeError):
    """Raised in a task when the worker itself can't do the work (not the image's fault)."""


@dataclass(frozen=True)
class ImageTask:
    path: str    # absolute: a worker's working folder is not the client's
    given: str   # the path as the user gave it, which messages and summary.csv show
    name: str    # NAME of the image's output files


@dataclass
class ImageOutcome:
    """What a task sends back: small, whatever the image's size."""
    row: dict                    # the image's summary.csv row
    table: pd.DataFrame | None   # its measurements.csv rows; None when it failed
    description: str = ""        # "12 nuclei, diameter ..., channel 0" for the progress line
    traceback: str = ""          # an unexpected error's traceback, for --debug
    disk_full: bool = False      # it failed because the output disk is full: the run stops

    @property
    def ok(self) -> bool:
        return self.row["status"] == "ok"


# --- client ------------------------------------------------------------------------------

def cluster_model_source(model: NucleiModel) -> str:
    """The source every worker loads: the model the client resolved, pinned. A Hub model is
    named by its commit (a branch could move during the run), a folder by its absolute path
    (workers have their own working folder)."""
    if model.source.startswith(HF_PREFIX) and model.revision:
        return f"{HF_PREFIX}{parse_hub_source(model.source).repo_id}@{model.revision}"
    return str(model.folder.resolve())


def model_identity(model: NucleiModel | None, model_source: str) -> str:
    """Which model the workers run, for summary.csv's settings: its folder's digest where
    the client can read it (workers may see folders the client doesn't), else the source."""
    try:
        return model.identity() if model is not None else model_digest(Path(model_source))
    except OSError:
        return model_source


def run_on_cluster(paths: list[str | Path], out: str | Path, request: ImageRequest, model_source: str,
                   workers: int | None = None, scheduler: str | None = None, log: TextIO = sys.stderr,
                   debug: bool = False, skip_existing: bool = False, model: NucleiModel | None = None) -> BatchResult:
    """``segment_paths`` on a Dask cluster: a local one of ``workers`` processes, or the one
    at ``scheduler``. The same files, lines on ``log`` and records (rows appended as the
    images finish, put in input order when the run ends). ``out``: a local folder or any fsspec URL the workers can reach.
    Images segmented block by block (TIFFs over the in-memory limit, every image with
    ``request.block_size``) go first, one at a time, each with its blocks spread over the
    workers (``cluster_blocks``); ``model`` is the client's copy of the model for planning
    them (loaded from ``model_source`` when not given). Raises ClusterError when the
    cluster can't be used."""
    if (workers is None) == (scheduler is None):
        raise ValueError("give exactly one of workers and scheduler")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    require_cluster_packages()
    out_url = output_url(out)
    prepare_output(out_url)
    local_out = local_folder(out_url)
    images, problems = collect_images(paths, skip_folders=(local_out,) if local_out else (),
                                      notes=(input_notes := []))
    report_input_notes(input_notes, log)
    result = BatchResult(failed=list(problems))
    run_id = uuid.uuid4().hex[:12]
    # The cluster first: an unreachable one fails before the record (maybe a previous run's,
    # for --skip-existing) is touched. No cluster for a run with no image.
    with (dask_client(workers, scheduler, debug) if images else nullcontext()) as client, \
            run_record(out_url, request.formats, skip_existing,
                       settings_text(request, model_identity(model, model_source))) as record:
        todo, order = plan(images, problems, record, result, log, paths)
        if todo:
            describe_cluster(client, log)
            started_with = set(client.nthreads())
            blockwise, whole = split_blockwise(todo, request)
            try:
                with Progress(len(todo), log) as progress:
                    if blockwise:
                        model = model or resolve_model(model_source, fallback=False)
                        run_blocks_on_cluster(client, model, blockwise, model_source, request, out_url, run_id,
                                              record, result, progress, debug)
                    if whole:
                        collect_outcomes(client, whole, model_source, request, out_url, run_id, record, result,
                                         progress, debug, first=len(blockwise) + 1)
            finally:  # a killed worker's temporary files, also when the run stops
                remove_leftovers(out_url, run_id)
            report_lost_workers(client, started_with, log)
        if not result.stopped:  # rows in input order, not in the order the workers finished
            put_in_order(record, order, log)
        report_removed(record, log)
    finish_run(paths, images, problems, result, log)
    return result


def require_cluster_packages() -> None:
    """Dask and fsspec are the CLI's extras (requirements-cli.txt), not the app's."""
    try:
        import distributed  # noqa: F401
        import fsspec  # noqa: F401
    except ImportError as error:
        raise ClusterError(f"--workers and --scheduler need Dask and fsspec ({error}); install them with "
                           f"`{this_python()} -m pip install -r requirements-cli.txt`.") from None


def this_python() -> str:
    """The interpreter running this, as the user can type it in a shell: the extras go into
    its environment (a user test: a bare `pip` may be another environment's). Relative where
    it lies under the working folder, quoted where it needs it."""
    import shlex
    import subprocess

    try:
        relative = os.path.relpath(sys.executable)
    except ValueError:  # Windows: another drive
        relative = os.pardir
    path = sys.executable if relative.startswith(os.pardir) else (
        relative if os.sep in relative else os.curdir + os.sep + relative)  # ./python, not one on PATH
    return subprocess.list2cmdline([path]) if os.name == "nt" else shlex.quote(path)


def plan(images: list[Path], problems: list[tuple[str, str]], record, result: BatchResult,
         log: TextIO, inputs: Sequence[str | Path] = ()) -> tuple[list[ImageTask], list[str]]:
    """As in-process (``batch.start_run``); returns the images to segment as tasks, and the
    names of all this run's images in input order."""
    names, todo = start_run(images, problems, record, result, log, inputs)
    return [ImageTask(os.path.abspath(path), str(path), names[path]) for path in todo], [names[p] for p in images]


@contextmanager
def dask_client(workers: int | None, scheduler: str | None, debug: bool = False) -> Iterator:
    """A client of the cluster at ``scheduler``, or of a local cluster of ``workers``
    processes (closed on exit). The local workers' own log lines are shown with ``debug``
    only: what goes wrong with an image or a worker the run reports itself, and on Ctrl-C a
    worker's heartbeat to the scheduler already closed printed a traceback (CI)."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        check_address(scheduler)
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError, TypeError) as error:
            raise ClusterError(f"could not reach the Dask scheduler at {scheduler} ({error}). Is `dask scheduler` "
                               "running there, and is the address (tcp://HOST:PORT) right?") from None
        with client:
            yield client
        return
    # One thread per worker: TensorFlow already spreads one image over the cores. The
    # scheduler's web endpoints (the dashboard, where bokeh is installed) on a free port, so
    # that two runs at once do not collide.
    with workers_ignore_interrupts():
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.ERROR if debug else logging.CRITICAL,
                               env=local_worker_environment(workers))
    with cluster, Client(cluster, set_as_default=False) as client:
        yield client


@contextmanager
def workers_ignore_interrupts():
    """Worker processes started inside ignore Ctrl-C. A terminal sends it to every process of
    the command, and each local worker printed a KeyboardInterrupt traceback (a user test);
    this process stops the cluster itself, and an ignored signal stays ignored in a child.
    (A worker the nanny restarts later, after a crash, is started without this.)"""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals belong to the main thread; nothing to change from another one
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:  # None: a handler set outside Python, which can't be put back: Python's own then
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)


def probe_scheduler(address: str) -> None:
    """The address checked, and something answering at it, before the model loads: a trial
    waited 52 s (the model, then the client's connection timeout) to learn nothing did. A
    refused connection fails at once; a silent host after ``CONNECT_TIMEOUT``."""
    import socket

    from dask.utils import parse_timedelta
    from distributed.comm.addressing import parse_address, parse_host_port

    check_address(address)
    scheme, location = parse_address(address)
    if scheme not in ("tcp", "tls"):
        return   # inproc:// and others: the client finds out
    try:
        socket.create_connection(parse_host_port(location), timeout=parse_timedelta(CONNECT_TIMEOUT)).close()
    except OSError as error:
        raise ClusterError(f"could not reach the Dask scheduler at {address} ({error.strerror or error}). Is `dask "
                           "scheduler` running there, and is the address (tcp://HOST:PORT) right?") from None


def check_address(address: str) -> None:
    """A malformed address fails here, with its reason, rather than as a timeout (a Client
    that failed on one also hangs for seconds when Python exits)."""
    from distributed.comm.addressing import get_address_host

    try:
        get_address_host(address)
    except ValueError as error:
        raise ClusterError(f"{address!r} is not a Dask scheduler address ({error}); expected tcp://HOST:PORT, "
                           "as `dask scheduler` prints it.") from None


def local_worker_environment(workers: int) -> dict[str, str]:
    """Local workers share this machine's cores: each TensorFlow gets its share instead of
    all of them (which would make N workers fight over the cores). A user's setting wins."""
    share = max(1, (os.cpu_count() or 1) // workers)
    return {variable: os.environ.get(variable, str(share)) for variable in ("TF_NUM_INTRAOP_THREADS",)}


def describe_cluster(client, log: TextIO) -> None:
    count = len(client.nthreads())
    if count:
        print(f"cluster: {client.scheduler.address}, {plural(count, 'worker', 'workers')}", file=log, flush=True)
    else:
        print(f"cluster: {client.scheduler.address}, no workers yet: the images wait until some join",
              file=log, flush=True)


def report_lost_workers(client, started_with: set[str], log: TextIO) -> None:
    """A worker that died (or left) under the run: its images were retried on the others and
    nothing shows in the results, but the user should know (a trial killed two and read no
    word of it). A worker its nanny restarts comes back under another address."""
    try:
        gone = sorted(started_with - set(client.nthreads()))
    except Exception:  # noqa: BLE001 - the scheduler itself gone: the run has said so already
        return
    if gone:
        print(f"note: {plural(len(gone), 'worker', 'workers')} of the cluster died or left during the run "
              f"({', '.join(gone)}); the images they held were retried on the others: summary.csv lists every "
              "input once. (Workers that die again and again may be short of memory.)", file=log, flush=True)


def split_blockwise(todo: list[ImageTask], request: ImageRequest) -> tuple[list[tuple[ImageTask, bool]], list[ImageTask]]:
    """([(task, huge)] of the images segmented block by block, the others), as ``segment_paths``
    decides: a TIFF over the in-memory limit is huge (read lazily by every worker)."""
    huge = {task.path for task in todo if is_huge(Path(task.path))}
    blockwise = [(task, task.path in huge) for task in todo if request.block_size or task.path in huge]
    return blockwise, [task for task in todo if not (request.block_size or task.path in huge)]


def run_blocks_on_cluster(client, model: NucleiModel, tasks: list[tuple[ImageTask, bool]], model_source: str,
                          request: ImageRequest, out_url: str, run_id: str, record, result: BatchResult,
                          progress: Progress, debug: bool) -> None:
    """Each image in turn, its blocks on the workers; planned, stitched, measured and written
    here (the client must reach the files too). One image's failure is its own."""
    from .batch import segment_by_blocks
    from .cluster_blocks import ClusterBlocks, SourceSpec

    for done, (task, huge) in enumerate(tasks, start=1):
        if result.stopped:
            break
        started, notes = time.time(), []
        spec = SourceSpec(task.path, task.given, huge, plane_request(request))
        runner = ClusterBlocks(client, spec, model_source, run_id, TASK_RETRIES,
                               precision=request.precision, engine=request.engine)
        try:
            with staged_output(out_url, run_id) as folder:
                table, count, prediction, (height, width), pixel_size = segment_by_blocks(
                    model, Path(task.path), huge, task.name, folder, request,
                    progress.tiles(Path(task.given).name, blocks=True), runner=runner, label=task.given, notes=notes)
        except ClusterError:
            raise
        except Exception as error:  # this image only
            outcome = failed_outcome(task, failure_status(error, debug), seconds=time.time() - started)
            outcome.disk_full = is_disk_full(error)
        else:
            row = summary_row(task.given, task.name, width=width, height=height, nuclei=count,
                              diameter=prediction.diameter, source=prediction.diameter_source,
                              channel=prediction.channel, seconds=time.time() - started, status="ok", notes=notes,
                              pixel_size=pixel_size, kind=prediction.kind)
            if huge:
                row["formats"] = huge_written(request.formats)
            outcome = ImageOutcome(row, table, f"{plural(count, 'nucleus', 'nuclei')}, "
                                               f"{describe_scale(prediction, pixel_size)}, "
                                               f"channel {prediction.channel} [block-wise]{noted(notes)}")
        book(outcome, task, done, record, result, progress, debug)


def collect_outcomes(client, todo: list[ImageTask], model_source: str, request: ImageRequest, out_url: str,
                     run_id: str, record, result: BatchResult, progress: Progress, debug: bool, first: int = 1) -> None:
    """Submits one task per image and records each outcome once, as it arrives; raises
    ClusterError (after cancelling the rest) when the workers can't work. ``first``: the
    number of the first image to finish, in the progress lines."""
    from distributed import as_completed

    futures = {client.submit(segment_on_worker, task, model_source, request, out_url, run_id, debug,
                             key=f"nuclei-segment-{run_id}-{index}", retries=TASK_RETRIES, pure=False): task
               for index, task in enumerate(todo)}
    try:
        for done, future in enumerate(as_completed(futures, loop=client.loop), start=first):
            task = futures[future]
            outcome = outcome_of(future, task)
            future.release()  # the worker may forget the result now
            book(outcome, task, done, record, result, progress, debug)
            if result.stopped:  # the rest would fail the same way: not started, not on record
                client.cancel([f for f in futures if not f.done()])
                break
    except ClusterError:
        client.cancel(list(futures))
        raise


def book(outcome: ImageOutcome, task: ImageTask, done: int, record, result: BatchResult, progress: Progress,
         debug: bool) -> None:
    """An image's outcome into the run's record, result and progress lines, once."""
    if outcome.disk_full:
        stop(result, DISK_FULL_STOP)
    put_on_record(record, result, outcome.row, outcome.table)
    result.summary.append(outcome.row)
    if outcome.ok:
        result.processed.append(task.given)
    else:
        result.failed.append((task.given, outcome.row["status"]))
    progress.done(progress_line(outcome, task, done, progress.total, debug))


def outcome_of(future, task: ImageTask) -> ImageOutcome:
    from distributed import KilledWorker

    if future.cancelled():
        raise ClusterError("the Dask scheduler dropped the work (was it restarted, or the connection lost?).")
    if future.status != "error":
        return future.result()
    error = future.exception()
    if isinstance(error, KilledWorker):  # this image, tried on several workers, killed each one
        return failed_outcome(task, killed_message(error))
    raise task_error(error)


def killed_message(error) -> str:
    """Why an image failed whose task (or one of its blocks) killed every worker it ran on."""
    tries = getattr(error, "allowed_failures", None)
    times = f"{tries + 1} times" if isinstance(tries, int) else "repeatedly"
    return (f"the Dask worker segmenting it died {times} (out of memory? a large image needs more memory per "
            "worker, or a smaller --block-size); not tried again.")


def task_error(error: BaseException) -> ClusterError:
    """A task's failure that is not the image's: the tasks catch every failure of the image
    itself, so anything else is the cluster's."""
    if isinstance(error, WorkerSetupError):
        return ClusterError(str(error))
    return ClusterError(f"a Dask worker could not run the task ({type(error).__name__}: {error}). The scheduler "
                        "and every worker need the same Python environment as this machine and this project "
                        "importable: start them with PYTHONPATH set to the project folder (README: Running on a "
                        "Dask cluster).")


def progress_line(outcome: ImageOutcome, task: ImageTask, done: int, total: int, debug: bool) -> str:
    """The in-process run's line for the image (counted in the order images finish)."""
    if outcome.ok:
        return f"[{done}/{total}] {Path(task.given).name}: {outcome.description} ({outcome.row['seconds']:.1f} s)"
    trace = outcome.traceback if debug else ""
    return f"{trace}[{done}/{total}] error: {task.given}: {outcome.row['status']} Skipped."


def failed_outcome(task: ImageTask, status: str, seconds: float | None = None) -> ImageOutcome:
    return ImageOutcome(summary_row(task.given, task.name, seconds=seconds, status=status), None)


# --- the output folder (written through ``output_folder``) ---------------------------------

def prepare_output(out_url: str) -> None:
    """Creates the output folder, so that a wrong URL fails before any work starts."""
    from fsspec.core import url_to_fs

    try:
        fs, root = url_to_fs(out_url)
        fs.makedirs(root, exist_ok=True)
    except (OSError, ValueError, ImportError) as error:
        raise ClusterError(f"the output folder {out_url} can't be used ({type(error).__name__}: {error}).") from None


# --- worker ----------------------------------------------------------------------------------

# One model per worker process and source, loaded by its first task: later tasks reuse it.
_models: dict[str, NucleiModel] = {}
_models_lock = threading.Lock()


def worker_model(source: str) -> NucleiModel:
    """The model for ``source`` in this worker process. No fallback: the client chose this
    exact model, and a worker silently running another one would mix two models' results."""
    with _models_lock:
        if source not in _models:
            try:
                _models[source] = resolve_model(source, fallback=False)
            except ModelLoadError as error:
                raise WorkerSetupError(f"Dask worker {worker_address()} could not load the model: {error} Workers "
                                       "need the model folder at the same path (a shared file system) or an "
                                       "hf:// source.") from None
        return _models[source]


def worker_address() -> str:
    from distributed import get_worker

    try:
        return get_worker().address
    except ValueError:  # not in a worker (called directly)
        return f"process {os.getpid()}"


def segment_on_worker(task: ImageTask, model_source: str, request: ImageRequest, out_url: str, run_id: str,
                      debug: bool = False) -> ImageOutcome:
    """One image, on a worker: segment, write its files, return its rows. Raises only when the
    worker can't work at all (WorkerSetupError); an image's own failure is its outcome."""
    model = worker_model(model_source)
    model.set_precision(request.precision)
    model.set_engine(request.engine)
    started, notes = time.time(), []
    try:
        # Messages name the file as the user did.
        channels, channel, pixel_size = read_input(task.path, request, notes, name=task.given)
        image_request = for_image(request, pixel_size, model.diameter, notes)
        segmentation = segment_channels(model, channels, replace(image_request, channel=channel))
        notes += image_notes(model, channels, segmentation, asked_channel=channel)
        table, files = image_files(task.name, channels, segmentation, request, pixel_size)
        write_files(out_url, files, run_id, pause=float(os.environ.get(PAUSE_ENV_VAR) or 0))
    except Exception as error:  # one image's failure, whatever it is, must not end the run
        outcome = failed_outcome(task, failure_status(error), seconds=time.time() - started)
        outcome.disk_full = is_disk_full(error)
        # failure_status's rule: only an unexpected error (not a ValueError) has a traceback worth showing.
        if debug and not isinstance(error, (ValueError, MemoryError)):
            outcome.traceback = "".join(traceback.format_exception(error))
        return outcome
    prediction = segmentation.prediction
    height, width = channels.shape[:2]
    row = summary_row(task.given, task.name, width=width, height=height, nuclei=segmentation.count,
                      diameter=prediction.diameter, source=prediction.diameter_source, channel=prediction.channel,
                      seconds=time.time() - started, status="ok", notes=notes, pixel_size=pixel_size,
                      kind=prediction.kind)
    description = (f"{plural(segmentation.count, 'nucleus', 'nuclei')}, {describe_scale(prediction, pixel_size)}, "
                   f"channel {prediction.channel}{noted(notes)}")
    return ImageOutcome(row, table, description)
