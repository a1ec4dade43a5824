"""The forward pass on TensorFlow's kernels against XNNPACK's (nuclei_app/xnnpack.py).

    python -m benchmarks.engines [--repeats 15]

Same network, same inputs, calls interleaved (TensorFlow, XNNPACK on every core, XNNPACK on
one thread, again and again) so that a host that slows down meanwhile slows all of them alike.
Prints the median wall and CPU milliseconds of each and the largest difference between their
probabilities. Default shapes: the throughput benchmark's network input (a 512x512 field at
25.4 px rescaled to 16 px), a 512x512 tile, and four of them (flip TTA). Then ``--labels N``
training-set images (every 16th, where the data set is present) are segmented the whole way
(automatic diameter, default TTA) on both kernels, and their label images compared. With
``--memory`` each kernel instead runs each shape in a fresh process, which prints its peak
RSS before and after three passes (TensorFlow and the model loaded in both).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np

from benchmarks.latency import peak_rss_gb
from nuclei_app.config import PROJECT_DIR
from nuclei_app.imageio import read_channels
from nuclei_app.machine import describe_machine
from nuclei_app.model import compiled_forward
from nuclei_app.sources import resolve_model
from nuclei_app.xnnpack import XnnpackForward, cached_flatbuffer, default_threads


def timed(forward, batch: np.ndarray) -> tuple[float, float, np.ndarray]:
    wall, cpu = time.perf_counter(), time.process_time()
    output = np.asarray(forward(batch))
    return time.perf_counter() - wall, time.process_time() - cpu, output


def compare(forwards: dict, shape: tuple[int, ...], repeats: int) -> str:
    batch = np.random.default_rng(0).random(shape, dtype=np.float32)
    outputs = {name: np.asarray(forward(batch)) for name, forward in forwards.items()}  # first calls: not timed
    walls, cpus = {name: [] for name in forwards}, {name: [] for name in forwards}
    for _ in range(repeats):
        for name, forward in forwards.items():
            wall, cpu, _ = timed(forward, batch)
            walls[name].append(wall)
            cpus[name].append(cpu)
    reference = outputs["tensorflow"]
    cells = [f"{name} {np.median(walls[name]) * 1000:4.0f} ms wall {np.median(cpus[name]) * 1000:5.0f} ms CPU"
             for name in forwards]
    difference = max(float(np.abs(output - reference).max()) for output in outputs.values())
    return f"{'x'.join(map(str, shape)):>13}  " + " | ".join(cells) + f" | largest difference {difference:.1e}"


def compare_labels(count: int) -> str:
    from nuclei_app.pipeline import segment
    from train.locations import default_data_dir

    folder = default_data_dir()
    if not folder.is_dir():
        return f"labels: no training set at {folder}; not compared"
    samples = sorted(p for p in folder.iterdir() if p.is_dir())[::16][:count]
    images = [image for sample in samples for image in sorted((sample / "images").glob("*.png"))[:1]]
    models = {}
    for engine in ("tensorflow", "xnnpack"):
        models[engine] = resolve_model(None, fallback=False)
        models[engine].set_engine(engine)
    identical = differing = 0
    for path in images:
        channels = read_channels(path)
        labels = [segment(model, channels).labels for model in models.values()]
        differing += int((labels[0] != labels[1]).sum())
        identical += not (labels[0] != labels[1]).any()
    return (f"labels on {len(images)} training images (every 16th of {folder.name}): identical on {identical}; "
            f"{differing} pixels differ in all")


def peak_of_one(engine: str, shape: tuple[int, ...]) -> str:
    """In this (fresh) process: three passes of one shape on one engine."""
    model = resolve_model(None, fallback=False)
    forward = compiled_forward(model.keras_model) if engine == "tensorflow" else \
        XnnpackForward(cached_flatbuffer(model.keras_model))
    loaded = peak_rss_gb()
    batch = np.random.default_rng(0).random(shape, dtype=np.float32)
    for _ in range(3):
        np.asarray(forward(batch))
    return f"{engine:<10} {'x'.join(map(str, shape)):>13}: peak RSS {loaded:.2f} GB loaded, {peak_rss_gb():.2f} GB after"


def memory_rows(shapes: list[tuple[int, ...]]) -> list[str]:
    rows = []
    for shape in shapes:
        for engine in ("tensorflow", "xnnpack"):
            command = [sys.executable, "-m", "benchmarks.engines", "--peak-of", engine, ",".join(map(str, shape))]
            result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=PROJECT_DIR)
            rows.append(result.stdout.strip().splitlines()[-1])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.engines", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--sizes", type=int, nargs="+", default=[336, 512],
                        help="square inputs of one image each, and four of the last size")
    parser.add_argument("--labels", type=int, default=40, metavar="N", help="training images segmented on both")
    parser.add_argument("--memory", action="store_true", help="peak RSS of each kernel and shape, each in its own process")
    parser.add_argument("--peak-of", nargs=2, metavar=("ENGINE", "SHAPE"), help=argparse.SUPPRESS)  # one such process
    args = parser.parse_args(argv)
    shapes = [(1, size, size, 3) for size in args.sizes] + [(4, args.sizes[-1], args.sizes[-1], 3)]
    if args.peak_of:
        print(peak_of_one(args.peak_of[0], tuple(int(n) for n in args.peak_of[1].split(","))))
        return 0
    if args.memory:
        print(f"machine: {describe_machine()}")
        print("\n".join(memory_rows(shapes)))
        return 0
    model = resolve_model(None, fallback=False)
    started = time.perf_counter()
    flatbuffer = cached_flatbuffer(model.keras_model)
    prepared = time.perf_counter() - started
    threads = default_threads()
    forwards = {"tensorflow": compiled_forward(model.keras_model),
                f"xnnpack/{threads}": XnnpackForward(flatbuffer, threads),
                "xnnpack/1": XnnpackForward(flatbuffer, 1)}
    print(f"machine: {describe_machine()}")
    print(f"model: {model.source}; XNNPACK network ready in {prepared:.1f} s (converted, or read from the cache); "
          f"median of {args.repeats} interleaved calls")
    for shape in shapes:
        print(compare(forwards, shape, args.repeats), flush=True)
    if args.labels:
        print(compare_labels(args.labels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
