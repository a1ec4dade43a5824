"""Where a batch image's time goes: each stage of the CLI's per-image work, run one after
another on the throughput benchmark's images, in wall time and in CPU time (all threads).

    python -m benchmarks.stages [--images 20] [--size 512] [--diameter PX]

On this 2-core machine the network keeps both cores busy, so the batch's overlap of stages
can hide only what fits beside it: a batch image can't take less wall time than its total
CPU time over two cores. The CPU column is what the work around the network costs.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.throughput import make_images
from nuclei_app.batch import ImageRequest, image_files
from nuclei_app.imageio import read_channels
from nuclei_app.inference import predict_preprocessed
from nuclei_app.machine import describe_machine
from nuclei_app.pipeline import (Prediction, Segmentation, capped_factor, inference_for, labels_for,
                                 network_input)
from nuclei_app.results import write_atomically
from nuclei_app.scale import estimate_diameter, rescale_image, resize_image, scale_factor
from nuclei_app.sources import resolve_model


class StageClock:
    """Wall and CPU seconds summed per stage name."""

    def __init__(self):
        self.wall, self.cpu = defaultdict(float), defaultdict(float)

    def run(self, name: str, function, *args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function(*args, **kwargs)
        self.wall[name] += time.perf_counter() - wall
        self.cpu[name] += time.process_time() - cpu
        return result


def profile_image(model, path: Path, out: Path, diameter: float, clock: StageClock) -> None:
    """The batch's work on one image at a given diameter, stage by stage (as ``batch.py``
    does it, without the threads)."""
    channels = clock.run("read file", read_channels, path)
    prepared = clock.run("channel + percentile stretch", network_input, model, channels)
    clock.run("(diameter estimate, automatic only)", estimate_diameter, prepared.image)
    factor = capped_factor(prepared.image.shape, scale_factor(diameter, model.diameter))
    scaled = clock.run("rescale to the network", rescale_image, prepared.image, factor)
    settings = inference_for(model, None, prepared.light)
    probabilities = clock.run("network", predict_preprocessed, model, scaled, settings, model.size_multiple)
    probabilities = clock.run("probabilities back to input size", resize_image, probabilities,
                              prepared.image.shape[:2])
    prediction = Prediction(probabilities, diameter, "given", prepared.channel, factor, model.diameter)
    labels = clock.run("watershed", labels_for, model, prediction)
    segmentation = Segmentation(prediction, labels)
    request = ImageRequest(model.postprocess_settings, diameter=diameter)
    _, files = clock.run("measure + overlay + encode", image_files, path.stem, channels, segmentation, request)
    clock.run("write files", write_atomically, out, files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stages", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--diameter", type=float, help="default: the median estimate of the first five images")
    args = parser.parse_args(argv)
    model = resolve_model(None, fallback=False)
    model.set_engine("auto")  # the network on the CLI's default kernels
    with tempfile.TemporaryDirectory() as folder:
        paths = make_images(args.images, args.size, Path(folder))
        diameter = args.diameter or float(np.median(
            [estimate_diameter(network_input(model, read_channels(p)).image) for p in paths[:5]]))
        profile_image(model, paths[0], Path(folder), diameter, StageClock())  # traces the graph: not counted
        clock = StageClock()
        for path in paths:
            profile_image(model, path, Path(folder), diameter, clock)
    print(f"machine: {describe_machine()}")
    print(f"{args.images} images of {args.size}x{args.size} at {diameter:.1f} px -> {model.diameter:g} px; "
          "ms per image, one stage after another")
    print(f"{'stage':>40}  {'wall':>6}  {'CPU':>6}")
    for name in clock.wall:
        print(f"{name:>40}  {clock.wall[name] * 1000 / args.images:6.1f}  {clock.cpu[name] * 1000 / args.images:6.1f}")
    around = {n: clock.cpu[n] for n in clock.cpu if n != "network" and not n.startswith("(")}
    print(f"{'CPU around the network (given diameter)':>40}  {'':>6}  {sum(around.values()) * 1000 / args.images:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
