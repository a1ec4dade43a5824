"""What a long-lived process keeps for each new input shape the network sees.

    python -m benchmarks.shape_memory [--shapes 120] [--every 20]

The app serves images of every size, and each size gives the network new input shapes (its
tiles, the diameter probes). This runs the bundled model on ``--shapes`` distinct small
shapes, one pass each, in a fresh process per setting, and prints the process's RSS after
each ``--every`` shapes (garbage collected and the heap trimmed, as the app's janitor does):
once with TensorFlow's kernels as this machine runs them, once with its oneDNN kernels off
(``TF_ENABLE_ONEDNN_OPTS=0``; where oneDNN is off anyway, as on CPUs without AVX-512, the
two match). Growth in the first and not the second is oneDNN's per-shape cache.
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys

import numpy as np

from nuclei_app.config import PROJECT_DIR
from nuclei_app.machine import describe_machine

SETTINGS = {"TensorFlow's kernels as installed": {}, "oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)": {"TF_ENABLE_ONEDNN_OPTS": "0"}}


def rss_gb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024**2
    return float("nan")


def distinct_shapes(count: int) -> list[tuple[int, int]]:
    """``count`` (height, width) pairs, multiples of 16 from 128 to 512 (tiles and small
    images), drawn at random (seeded) from the 625 there are."""
    sides = range(128, 513, 16)
    return random.Random(0).sample([(height, width) for width in sides for height in sides], count)


def measure(count: int, every: int) -> None:
    """In this process: the RSS after loading, then after each ``every`` new shapes."""
    from nuclei_app.memory import release_free_memory
    from nuclei_app.sources import resolve_model

    model = resolve_model(None)
    model.prepare()
    release_free_memory()
    line = [f"loaded {rss_gb():.2f}"]
    rng = np.random.default_rng(0)
    for done, (height, width) in enumerate(distinct_shapes(count), start=1):
        model.predict(rng.random((1, height, width, 3), dtype=np.float32))
        if done % every == 0:
            release_free_memory()
            line.append(f"{done} shapes {rss_gb():.2f}")
    print(" | ".join(line) + " (GB)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shape_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=int, default=120, help="at most 625")
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)  # one setting's child
    args = parser.parse_args(argv)
    if args.in_process:
        measure(args.shapes, args.every)
        return 0
    print(f"machine: {describe_machine()}; {args.shapes} distinct input shapes, one pass each")
    for name, env in SETTINGS.items():
        print(f"{name}: ", end="", flush=True)
        child = subprocess.run([sys.executable, "-m", "benchmarks.shape_memory", "--in-process",
                                "--shapes", str(args.shapes), "--every", str(args.every)],
                               cwd=PROJECT_DIR, env={**os.environ, **env}, capture_output=True, text=True)
        last_error = (child.stderr.strip().splitlines() or [""])[-1]
        print(child.stdout.strip() or f"failed (exit status {child.returncode}): {last_error}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
