"""The batch on a real Dask cluster: a `dask scheduler` and two `dask worker` processes started
as a user would, a local cluster, and a worker killed mid-write. The cluster's files must be
byte-identical to the in-process run's, and every image must end up exactly once."""
from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

pytest.importorskip("distributed", reason="Dask (distributed) is not installed: pip install -r requirements-cli.txt")

from nuclei_app import distributed as cluster_run  # noqa: E402  (after the skip: needs nothing from Dask itself)
from nuclei_app.batch import ImageRequest, segment_paths  # noqa: E402

from .conftest import PROJECT, free_port  # noqa: E402
from .test_batch import write_image  # noqa: E402

# Workers wait this long between writing an image's temporary files and renaming them: the
# window in which the kill test strikes.
WRITE_PAUSE_S = 0.5
START_TIMEOUT_S = 180  # two workers importing TensorFlow on a busy machine


@dataclass
class Cluster:
    address: str
    processes: list[subprocess.Popen]
    logs: Path

    def log_text(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.logs.iterdir()))


def start(command: list[str], log: Path, env: dict, cwd: Path) -> subprocess.Popen:
    # A session of its own, so that teardown can stop the process and its children (the
    # nanny's worker) together.
    with open(log, "wb") as sink:
        return subprocess.Popen([sys.executable, "-m", "dask", *command], stdout=sink, stderr=subprocess.STDOUT,
                                env=env, cwd=cwd, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    try:  # the worker processes the nanny started, should any have outlived it
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request) -> Cluster:
    """`dask scheduler` + two `dask worker --nthreads 1 --nworkers 1`, started from another
    folder than the tests' (so relative paths would break), with this project importable."""
    from distributed import Client

    home, logs = tmp_path_factory.mktemp("cluster_home"), tmp_path_factory.mktemp("cluster_logs")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")])),
           cluster_run.PAUSE_ENV_VAR: str(WRITE_PAUSE_S)}
    processes: list[subprocess.Popen] = []
    # Finalizer first: whatever fails below, every process started is stopped.
    request.addfinalizer(lambda: [stop(p) for p in reversed(processes)])
    processes.append(start(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                           logs / "scheduler.log", env, home))
    for number in (1, 2):
        processes.append(start(["worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                                "--death-timeout", "60", "--local-directory", str(home)],
                               logs / f"worker{number}.log", env, home))
    found = Cluster(address, processes, logs)
    try:
        with Client(address, timeout="60s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT_S)
    except (OSError, TimeoutError) as error:
        pytest.fail(f"the test cluster did not start ({error}):\n{found.log_text()}")
    return found


@dataclass
class Run:
    status: int
    log: str


def segment_on_cluster(model, inputs: Path, out: Path, **options) -> Run:
    """`python -m nuclei_app segment INPUTS --out OUT --model FOLDER (--scheduler A | --workers N)`.
    Called in-process until the CLI has the flags; then: run_cli(...) from test_main."""
    log = io.StringIO()
    try:
        result = cluster_run.run_on_cluster([inputs], str(out), ImageRequest(model.postprocess_settings),
                                            cluster_run.cluster_model_source(model), log=log, **options)
    except cluster_run.ClusterError as error:
        print(f"error: {error}", file=log)
        return Run(2, log.getvalue())
    return Run(result.exit_status, log.getvalue())


def write_inputs(folder: Path, count: int, broken: bool = True) -> list[str]:
    for seed in range(count):
        write_image(folder / f"cells{seed}.png", seed=seed)
    if broken:
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return [f"cells{seed}" for seed in range(count)]


def in_process(model, inputs: Path, out: Path) -> str:
    """The reference run, on the CLI's default kernels (--engine auto) as the workers are."""
    log, engine = io.StringIO(), model.engine
    model.set_engine("auto")
    try:
        segment_paths(model, [inputs], out, ImageRequest(model.postprocess_settings), log=log)
    finally:
        model.set_engine(engine)
    return log.getvalue()


def sorted_rows(csv: Path, by: list[str]) -> pd.DataFrame:
    """The rows in a fixed order: the cluster records images in the order they finish."""
    frame = pd.read_csv(csv).drop(columns="seconds", errors="ignore")
    return frame.sort_values(by).reset_index(drop=True)


def image_files(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name not in ("measurements.csv", "summary.csv"))


def expected_files(names: list[str]) -> list[str]:
    return sorted(f"{name}_{kind}.png" for name in names for kind in ("labels", "mask", "overlay"))


def segment_with_the_cli(model, inputs: Path, out: Path, *flags) -> Run:
    """The real command line: `python -m nuclei_app segment INPUTS --out OUT --model FOLDER FLAGS`."""
    from .test_main import run_cli

    result = run_cli("segment", inputs, "--out", out, "--model", model.folder, *flags)
    return Run(result.returncode, result.stderr)


def test_a_scheduler_run_gives_the_in_process_files(cluster, tiny_model, tmp_path):
    names = write_inputs(tmp_path / "in", 6)
    in_process(tiny_model, tmp_path / "in", tmp_path / "reference")
    run = segment_with_the_cli(tiny_model, tmp_path / "in", tmp_path / "out", "--scheduler", cluster.address)
    assert run.status == 1, run.log + cluster.log_text()  # broken.png
    out, reference = tmp_path / "out", tmp_path / "reference"
    assert image_files(out) == image_files(reference) == expected_files(names)  # no temporary files left
    for name in image_files(out):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    for csv, by in (("measurements.csv", ["image", "nucleus"]), ("summary.csv", ["file"])):
        pd.testing.assert_frame_equal(sorted_rows(out / csv, by), sorted_rows(reference / csv, by))
    for csv in ("measurements.csv", "summary.csv"):  # in input order, as in-process, whoever finished first
        assert list(pd.read_csv(out / csv)["image"]) == list(pd.read_csv(reference / csv)["image"]), csv
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["file"]) == sorted(str(p) for p in (tmp_path / "in").iterdir())  # each input once
    assert "damaged" in summary.set_index("image").loc["broken", "status"]
    errors = [line for line in run.log.splitlines() if "error:" in line]
    assert len(errors) == 1 and "broken.png" in errors[0] and "Traceback" not in run.log
    assert re.match(r"\[\d/7\] error: ", errors[0]), errors[0]   # counted like the others
    assert sum(line.startswith("[") and "/7] cells" in line for line in run.log.splitlines()) == 6, run.log
    assert f"cluster: {cluster.address}, 2 workers" in run.log


def test_skip_existing_resumes_a_cluster_run(cluster, tiny_model, tmp_path):
    names = write_inputs(tmp_path / "in", 3, broken=False)
    out = tmp_path / "out"
    assert segment_on_cluster(tiny_model, tmp_path / "in", out, scheduler=cluster.address).status == 0
    (out / "cells1_mask.png").unlink()  # an image whose files are incomplete is done again
    kept = (out / "cells0_labels.png").stat().st_mtime_ns
    run = segment_on_cluster(tiny_model, tmp_path / "in", out, scheduler=cluster.address, skip_existing=True)
    assert run.status == 0 and "2 of 3 images finished before; 1 to do" in run.log, run.log
    assert (out / "cells0_labels.png").stat().st_mtime_ns == kept and (out / "cells1_mask.png").exists()
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["image"]) == names and (summary["status"] == "ok").all()
    rows_per_image = pd.read_csv(out / "measurements.csv").groupby("image").size()
    assert rows_per_image.to_dict() == summary.set_index("image")["nuclei"].to_dict()  # no row twice


def test_a_worker_killed_mid_write_loses_and_repeats_nothing(cluster, tiny_model, tmp_path):
    from distributed import Client

    names = write_inputs(tmp_path / "in", 8, broken=False)
    out = tmp_path / "out"
    with Client(cluster.address, set_as_default=False) as client:
        worker_pids = set(client.run(os.getpid).values())
    runs: list[Run] = []
    thread = threading.Thread(target=lambda: runs.append(
        segment_on_cluster(tiny_model, tmp_path / "in", out, scheduler=cluster.address)))
    thread.start()
    killed, part = None, None
    deadline = time.time() + START_TIMEOUT_S
    while killed is None and thread.is_alive() and time.time() < deadline:
        # A worker between writing an image's temporary files and renaming them: kill it there.
        part = next((p for p in (out.iterdir() if out.exists() else []) if p.name.endswith(".part")), None)
        if part is not None:
            killed = int(part.name.rsplit(".", 2)[-2].split("-")[1])  # .NAME.RUN-PID-RANDOM.part
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    thread.join(timeout=START_TIMEOUT_S)
    assert killed in worker_pids, (killed, worker_pids)
    assert not thread.is_alive() and runs, cluster.log_text()
    run = runs[0]
    assert run.status == 0, run.log + cluster.log_text()
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["image"]) == names and (summary["status"] == "ok").all()  # each image once
    assert sum(line.startswith("[") for line in run.log.splitlines()) == len(names), run.log  # reported once
    assert "note: 1 worker of the cluster died or left during the run" in run.log, run.log   # and told
    assert image_files(out) == expected_files(names)  # one set each, nothing partial, no temporary file
    assert not part.exists()
    in_process(tiny_model, tmp_path / "in", tmp_path / "reference")
    for name in expected_files(names):
        assert (out / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name


def test_a_local_cluster_of_one_worker(tiny_model, tmp_path):
    names = write_inputs(tmp_path / "in", 2)
    run = segment_with_the_cli(tiny_model, tmp_path / "in", tmp_path / "out", "--workers", "1")
    assert run.status == 1 and "broken.png" in run.log and "1 worker" in run.log, run.log
    in_process(tiny_model, tmp_path / "in", tmp_path / "reference")
    assert image_files(tmp_path / "out") == expected_files(names)
    for name in expected_files(names):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name


def test_ctrl_c_stops_a_local_cluster_run_with_one_message_and_no_worker_tracebacks(tiny_model, tmp_path):
    """A user test: Ctrl-C (SIGINT to every process of the command, as a terminal sends it)
    printed each local worker's KeyboardInterrupt traceback before the CLI's message."""
    write_inputs(tmp_path / "in", 8, broken=False)
    stderr = tmp_path / "stderr.txt"
    command = [sys.executable, "-m", "nuclei_app", "segment", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
               "--model", str(tiny_model.folder), "--workers", "2"]
    env = {**os.environ, cluster_run.PAUSE_ENV_VAR: "1.5"}  # each image takes 1.5 s: time to interrupt
    with stderr.open("w") as sink:
        # Ctrl-C as on a terminal: a test run started in the background (CI) passes SIGINT on
        # ignored, and a Python started so never sees it.
        run = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=sink, stderr=sink, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + START_TIMEOUT_S
    while "[1/8]" not in stderr.read_text() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGINT)
    status = run.wait(timeout=120)
    text = stderr.read_text()
    assert status == 130 and "interrupted: the images finished so far" in text, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text


def test_workers_without_the_model_stop_the_run_with_one_line(cluster, tiny_model, tmp_path):
    write_inputs(tmp_path / "in", 2, broken=False)
    log = io.StringIO()
    with pytest.raises(cluster_run.ClusterError, match="could not load the model.*no_such_model"):
        cluster_run.run_on_cluster([tmp_path / "in"], str(tmp_path / "out"), ImageRequest(tiny_model.postprocess_settings),
                                   str(tmp_path / "no_such_model"), scheduler=cluster.address, log=log)
    assert len(pd.read_csv(tmp_path / "out" / "summary.csv")) == 0  # as in-process: only what finished is on record


def test_an_unreachable_scheduler_is_one_clear_error_and_touches_nothing(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(cluster_run, "CONNECT_TIMEOUT", "2s")
    write_inputs(tmp_path / "in", 1, broken=False)
    address = f"tcp://127.0.0.1:{free_port()}"
    run = segment_on_cluster(tiny_model, tmp_path / "in", tmp_path / "out", scheduler=address)
    assert run.status == 2 and f"could not reach the Dask scheduler at {address}" in run.log, run.log
    assert "Traceback" not in run.log and not (tmp_path / "out" / "summary.csv").exists()
    malformed = segment_on_cluster(tiny_model, tmp_path / "in", tmp_path / "out", scheduler="http://host:8786")
    assert malformed.status == 2 and "is not a Dask scheduler address" in malformed.log, malformed.log


def test_without_dask_the_error_says_what_to_install(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    write_inputs(tmp_path / "in", 1, broken=False)
    run = segment_on_cluster(tiny_model, tmp_path / "in", tmp_path / "out", workers=1)
    assert run.status == 2 and "pip install -r requirements-cli.txt" in run.log, run.log


def test_block_wise_images_on_the_cluster_give_the_in_process_files(cluster, tiny_model, tmp_path):
    """--block-size with --scheduler: every image's blocks go to the workers; the files and
    rows are the in-process block-wise run's, and a broken file fails alone."""
    names = write_inputs(tmp_path / "in", 2)
    log = io.StringIO()
    segment_paths(tiny_model, [tmp_path / "in"], tmp_path / "reference",
                  ImageRequest(tiny_model.postprocess_settings, block_size=256), log=log)
    run = segment_with_the_cli(tiny_model, tmp_path / "in", tmp_path / "out", "--scheduler", cluster.address,
                               "--block-size", "256")
    assert run.status == 1, run.log + cluster.log_text()  # broken.png
    out, reference = tmp_path / "out", tmp_path / "reference"
    assert image_files(out) == image_files(reference) == expected_files(names)
    for name in image_files(out):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    for csv, by in (("measurements.csv", ["image", "nucleus"]), ("summary.csv", ["file"])):
        pd.testing.assert_frame_equal(sorted_rows(out / csv, by), sorted_rows(reference / csv, by))
    assert sum("[block-wise]" in line for line in run.log.splitlines()) == 2, run.log
    assert "Traceback" not in run.log


@pytest.fixture(scope="module")
def field(tmp_path_factory, bundled_model):
    """A 1200x1100 tiled TIFF of touching nuclei and its in-process block-wise result (9 blocks)."""
    from benchmarks.huge_image import NucleusField, write_field_tiff
    from nuclei_app.blocks import segment_in_blocks

    folder = tmp_path_factory.mktemp("field")
    path = write_field_tiff(folder / "field.tif", NucleusField(diameter=22.0), 1200, 1100, tile=256)
    return path, segment_in_blocks(bundled_model, path, folder / "here", "field", block_size=400)


def on_the_cluster(cluster, model, path: Path, out: Path, progress=None, before=None):
    """The lazy path a TIFF over the in-memory limit takes: each worker reads its blocks'
    windows from the file. ``before(client)`` runs first; ``progress`` sees each block stitched."""
    from distributed import Client

    from nuclei_app.blocks import segment_in_blocks
    from nuclei_app.cluster_blocks import ClusterBlocks, SourceSpec

    with Client(cluster.address, timeout="60s", set_as_default=False) as client:
        client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        runner = ClusterBlocks(client, SourceSpec(str(path), path.name, lazy=True),
                               cluster_run.cluster_model_source(model), run_id=out.name)
        progress = progress(client) if progress else None
        result = segment_in_blocks(model, path, out, "field", block_size=400, runner=runner, progress=progress)
    return result, runner


def assert_same_result(there, here) -> None:
    assert there.blocks == here.blocks == 9
    assert (there.diameter, there.diameter_source, there.count) == (here.diameter, here.diameter_source, here.count)
    assert np.array_equal(tifffile.imread(there.files["labels"]), tifffile.imread(here.files["labels"]))
    pd.testing.assert_frame_equal(there.table, here.table)


def test_a_huge_tiff_s_blocks_are_segmented_by_the_workers(cluster, bundled_model, field, tmp_path):
    path, here = field
    there, runner = on_the_cluster(cluster, bundled_model, path, tmp_path / "there")
    assert runner.submitted >= 9
    assert_same_result(there, here)


def test_a_huge_z_stack_s_sharpest_plane_and_pixel_size_are_the_workers_too(cluster, bundled_model, field,
                                                                           tmp_path):
    """The workers read the plane the client judged sharpest (each opens the file itself),
    and the label TIFF carries the pixel size: as the same image segmented in-process."""
    from distributed import Client
    from scipy import ndimage

    from nuclei_app.blocks import segment_in_blocks
    from nuclei_app.calibration import PixelSize, read_pixel_size
    from nuclei_app.cluster_blocks import ClusterBlocks, SourceSpec
    from nuclei_app.planes import PlaneRequest

    sharp = tifffile.imread(field[0])[:600, :700]
    stack = np.stack([ndimage.gaussian_filter(sharp, 4), sharp, ndimage.gaussian_filter(sharp, 6)])
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(path, stack, ome=True, tile=(256, 256), compression="zlib", metadata={"axes": "ZYX"})
    options = dict(block_size=400, plane=PlaneRequest("focus"), pixel_size=PixelSize(0.5, "given"))
    here = segment_in_blocks(bundled_model, path, tmp_path / "here", "stack", **options)
    with Client(cluster.address, timeout="60s", set_as_default=False) as client:
        client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        runner = ClusterBlocks(client, SourceSpec(str(path), path.name, lazy=True, plane=PlaneRequest("focus")),
                               cluster_run.cluster_model_source(bundled_model), run_id="zstack")
        there = segment_in_blocks(bundled_model, path, tmp_path / "there", "stack", runner=runner, **options)
    assert here.notes == there.notes == ["a stack of 3 Z planes: plane 1, the sharpest, is segmented"]
    assert here.count > 100 and np.array_equal(tifffile.imread(there.files["labels"]),
                                               tifffile.imread(here.files["labels"]))
    assert read_pixel_size(there.files["labels"]).size.um == pytest.approx(0.5)


def test_a_worker_killed_mid_image_has_its_blocks_redone_elsewhere(cluster, bundled_model, field, tmp_path):
    path, here = field
    killed = []

    def kill_a_busy_worker(client):
        def on_block(done: int, total: int) -> None:
            # The first time a block is stitched while a worker still holds blocks: kill it.
            # Not at a fixed count: on a loaded machine the workers can finish every block
            # before the client has stitched the second one.
            busy = [address for address, keys in client.processing().items() if keys] if not killed else []
            if busy:
                pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        return on_block

    there, _ = on_the_cluster(cluster, bundled_model, path, tmp_path / "there", progress=kill_a_busy_worker)
    assert killed, "no worker was busy to kill"
    assert_same_result(there, here)  # its blocks were rerun, none lost, none stitched twice


def test_a_worker_s_line_carries_the_reading_notes(tiny_model, tmp_path):
    """On a worker as in-process: a Z-stack says which plane was segmented; a single-channel
    image under --channel N gives its one channel, with a note."""
    stack = np.random.default_rng(0).integers(0, 255, (3, 48, 48), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "z.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    (tmp_path / "out").mkdir()
    request = ImageRequest(tiny_model.postprocess_settings, channel=1)
    task = cluster_run.ImageTask(str(tmp_path / "z.tif"), "z.tif", "z")
    outcome = cluster_run.segment_on_worker(task, str(tiny_model.folder), request, str(tmp_path / "out"), "run")
    assert outcome.ok, outcome.row
    assert "; note: a stack of 3 Z planes: the first is segmented" in outcome.description
    assert ("; note: one channel only (grey, or colours that are copies of one grey): --channel 1 does not "
            "apply") in outcome.description
    assert (tmp_path / "out" / "z_labels.png").is_file()
