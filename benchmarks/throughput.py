"""Batch throughput: 50 different 512x512 images through the CLI's batch path in one run,
against the bare compiled forward pass of the same network on the same network inputs,
measured in the same process.

    python -m benchmarks.throughput [--images 50] [--size 512] [--workers 1 2]

Per image, the batch path reads the file, picks the channel, estimates the diameter (or
takes the given one), runs the network, runs the watershed, measures, draws the overlay,
encodes three PNGs and writes them. "bare forward" is only the network's compiled forward
pass on the inputs the pipeline fed it (the image rescaled to the model's nucleus diameter).
The CLI's default kernels (``--engine auto``: XNNPACK, or TensorFlow's where they run oneDNN)
run the batch rows and their bare pass; one row runs the other kernels against their own bare pass.
``--workers`` adds runs on a local Dask cluster of that many workers (CLI extras). Where the
CPU computes bfloat16 natively, the batch is also run with ``--precision bfloat16``; everywhere
with ``--precision int8``, against the faster float32 bare pass. One more
row, ``--formats tiff``, writes the label TIFF and the measurements but no overlay and no
PNGs: what drawing and encoding the default outputs cost.
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from nuclei_app.config import SAMPLES_DIR
from nuclei_app.imageio import read_image, to_uint8
from nuclei_app.machine import describe_machine
from nuclei_app.pipeline import network_input
from nuclei_app.precision import cpu_has_bf16
from nuclei_app.scale import rescale_image, scale_factor
from nuclei_app.sources import resolve_model

TARGET_RATIO = 1.3
KERNELS = {"xnnpack": "XNNPACK", "tensorflow": "TensorFlow"}


def make_images(count: int, size: int, folder: Path) -> list[Path]:
    """Different crops of a tiled dense fluorescence sample: the same kind of content, no two alike."""
    sample = read_image(SAMPLES_DIR / "images" / "fluorescence_dense.png")
    mosaic = np.tile(sample, (3, 3, 1))
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        top, left = rng.integers(0, mosaic.shape[0] - size), rng.integers(0, mosaic.shape[1] - size)
        path = folder / f"field_{index:03d}.png"
        Image.fromarray(to_uint8(mosaic[top:top + size, left:left + size])).save(path)
        paths.append(path)
    return paths


def bare_forward_seconds(model, paths: list[Path], diameter: float) -> float:
    """Median seconds of the compiled forward pass on each image's network input."""
    from nuclei_app.inference import pad_to_multiple

    times = []
    for path in paths:
        prepared = network_input(model, read_image(path)).image
        scaled = rescale_image(prepared, scale_factor(diameter, model.diameter))
        batch = pad_to_multiple(scaled, model.size_multiple)[0][None].astype(np.float32)
        model.predict(batch)  # the first call of a shape may trace: not timed
        started = time.perf_counter()
        model.predict(batch)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def batch_seconds(model, paths: list[Path], out: Path, diameter: float | None,
                  formats: tuple[str, ...] = ("png",)) -> float:
    from nuclei_app.batch import ImageRequest, segment_paths

    request = ImageRequest(model.postprocess_settings, diameter=diameter, formats=formats)
    started, cpu = time.perf_counter(), time.process_time()
    result = segment_paths(model, paths, out, request, log=io.StringIO())
    assert not result.failed, result.failed
    CPU_SECONDS[out] = time.process_time() - cpu
    return time.perf_counter() - started


CPU_SECONDS: dict[Path, float] = {}  # batch_seconds' run -> the process's CPU seconds (all threads)


def cluster_seconds(model, paths: list[Path], out: Path, workers: int) -> float:
    from nuclei_app.batch import ImageRequest
    from nuclei_app.distributed import run_on_cluster

    started = time.perf_counter()
    result = run_on_cluster(paths, str(out), ImageRequest(model.postprocess_settings), str(model.folder),
                            workers=workers, log=io.StringIO())
    assert not result.failed, result.failed
    return time.perf_counter() - started


def int8_rows(model, paths: list[Path], folder: Path, diameter: float, float32: tuple[float, str]) -> list[tuple]:
    """``--precision int8`` (XNNPACK's integer kernels), against the faster of the float32 bare passes."""
    model.set_precision("int8")
    batch_seconds(model, paths[:2], folder / "warm8", diameter)   # converts (or reads the cache) and traces
    if model.precision != "int8":   # the network could not be quantized (the warning said why)
        print("int8: not measured, the network fell back to float32")
        return []
    rows = [(f"int8, diameter {how}", batch_seconds(model, paths, folder / f"{how}8", given), float32,
             CPU_SECONDS[folder / f"{how}8"]) for how, given in (("estimated", None), ("given", diameter))]
    print(f"bare forward pass in int8 (XNNPACK kernels): {bare_forward_seconds(model, paths[:10], diameter) * 1000:.0f} "
          "ms per image")
    model.set_precision("float32")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", type=int, nargs="*", default=[], help="also run on local Dask clusters")
    args = parser.parse_args(argv)
    model = resolve_model(None, fallback=False)
    model.set_engine("auto")  # as the CLI runs it
    with tempfile.TemporaryDirectory() as folder:
        paths = make_images(args.images, args.size, Path(folder))
        warm = batch_seconds(model, paths[:2], Path(folder) / "warm", None)  # traces the graph once
        auto = batch_seconds(model, paths, Path(folder) / "auto", None)
        from nuclei_app.pipeline import predict

        diameters = [predict(model, read_image(p)).diameter for p in paths[:5]]
        diameter = float(np.median(diameters))
        given = batch_seconds(model, paths, Path(folder) / "given", diameter)
        bare = bare_forward_seconds(model, paths[:10], diameter)
        print(f"machine: {describe_machine()}")
        print(f"{args.images} images of {args.size}x{args.size}; model {model.folder.name}; "
              f"network input at {diameter:.1f} px -> {model.diameter:g} px (warm-up {warm:.1f} s)")
        default = model.runs_on  # --engine auto's choice on this machine (xnnpack.preferred_here)
        print(f"bare forward pass, CLI default ({KERNELS[default]} kernels): {bare * 1000:.0f} ms per image")
        labels_only = batch_seconds(model, paths, Path(folder) / "tiff", diameter, formats=("tiff",))
        bare_passes = {default: (bare, KERNELS[default])}  # each row's reference: a bare pass, and whose kernels ran it
        cpu = {name: CPU_SECONDS[Path(folder) / name] for name in ("auto", "given", "tiff")}
        rows = [("batch, diameter estimated", auto, bare_passes[default], cpu["auto"]),
                ("batch, diameter given", given, bare_passes[default], cpu["given"]),
                ("given, --formats tiff", labels_only, bare_passes[default], cpu["tiff"])]
        # The same batch on the other kernels (--engine), against their own bare pass.
        other = "tensorflow" if default == "xnnpack" else "xnnpack"
        model.set_engine(other)
        batch_seconds(model, paths[:2], Path(folder) / "warm_other", diameter)
        other_given = batch_seconds(model, paths, Path(folder) / "given_other", diameter)
        other_bare = bare_forward_seconds(model, paths[:10], diameter)
        print(f"bare compiled forward pass, {KERNELS[other]} kernels: {other_bare * 1000:.0f} ms per image")
        bare_passes[other] = (other_bare, KERNELS[other])
        rows.append((f"--engine {other}, given", other_given, bare_passes[other], CPU_SECONDS[Path(folder) / "given_other"]))
        tensorflow = bare_passes["tensorflow"]
        if cpu_has_bf16():  # --precision bfloat16 (TensorFlow's kernels), against their float32 bare pass
            model.set_precision("bfloat16")
            batch_seconds(model, paths[:2], Path(folder) / "warm16", diameter)
            rows += [("bfloat16, diameter estimated", batch_seconds(model, paths, Path(folder) / "auto16", None),
                      tensorflow, CPU_SECONDS[Path(folder) / "auto16"]),
                     ("bfloat16, diameter given", batch_seconds(model, paths, Path(folder) / "given16", diameter),
                      tensorflow, CPU_SECONDS[Path(folder) / "given16"])]
            print(f"bare compiled forward pass in bfloat16: {bare_forward_seconds(model, paths[:10], diameter) * 1000:.0f} "
                  "ms per image")
            model.set_precision("float32")
        else:
            print("bfloat16: this CPU has no native bfloat16 arithmetic (AVX-512 BF16 / AMX); not measured")
        rows += int8_rows(model, paths, Path(folder), diameter, min(bare_passes.values()))
        model.set_engine("auto")
        for label, seconds, (reference, kernels), cpu_seconds in rows:
            per_image = seconds / args.images
            print(f"{label:>28}: {args.images / seconds:5.2f} images/s, {per_image * 1000:.0f} ms per image = "
                  f"{per_image / reference:.2f}x the bare float32 pass on {kernels} kernels (target <= {TARGET_RATIO}); "
                  f"{cpu_seconds * 1000 / args.images:.0f} ms of CPU per image")
        for workers in args.workers:
            seconds = cluster_seconds(model, paths, Path(folder) / f"dask{workers}", workers)
            print(f"{f'Dask --workers {workers}':>28}: {args.images / seconds:5.2f} images/s (cluster start included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
