"""What the quality benchmarks that go through a sample of the training images share: their
arguments (--data, --every, --model), the model, and the line naming machine and model."""
from __future__ import annotations

import argparse

from nuclei_app.machine import describe_machine
from nuclei_app.model import NucleiModel
from nuclei_app.sources import describe, resolve_model
from train.data import DEFAULT_DATA_DIR, SampleFiles, find_samples


def sampled_images(prog: str, doc: str, argv: list[str] | None,
                   every: int = 4) -> tuple[NucleiModel, list[SampleFiles]]:
    """(the model, every ``--every``-th image of ``--data``), the machine and model printed."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA_DIR)
    parser.add_argument("--every", type=int, default=every)
    parser.add_argument("--model")
    args = parser.parse_args(argv)
    model = resolve_model(args.model)
    print(f"machine: {describe_machine()}; model: {describe(model)}")
    return model, find_samples(args.data)[::args.every]
