"""TensorFlow's oneDNN CPU kernels off and on: one training step of the default recipe and the
bundled model's forward pass, each setting in a fresh process (TensorFlow reads the setting
once, when it loads).

    python -m benchmarks.cpu_kernels [--steps 3] [--passes 10] [--size 512]

TensorFlow turns oneDNN on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX. Training
asks for it everywhere (``train/__init__.py``); the app and the CLI leave TensorFlow's
choice, because on an AVX2-only CPU it made training steps faster and one-image forward
passes slower. This prints both on this machine; on one with AVX-512 the rows should match.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

SETTINGS = {"0": "off (TF_ENABLE_ONEDNN_OPTS=0)", "1": "on (TF_ENABLE_ONEDNN_OPTS=1: training's setting)"}


def training_step_seconds(steps: int, crop: int) -> list[float]:
    """Seconds per step of the default recipe's network and batch, on random crops."""
    import keras

    from train.config import TrainConfig
    from train.losses import bce_dice_loss
    from train.unet import UNetConfig, build_unet

    config = TrainConfig()
    model = build_unet(UNetConfig(base_filters=config.base_filters, depth=config.depth))
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=bce_dice_loss)
    rng = np.random.default_rng(0)
    images = rng.random((config.batch_size, crop, crop, 3), np.float32)
    targets = (rng.random(images.shape[:3] + (2,)) > 0.5).astype(np.float32)
    model.train_on_batch(images, targets)  # traces the step: not timed
    return [_timed(model.train_on_batch, images, targets) for _ in range(steps)]


def forward_seconds(passes: int, size: int) -> list[float]:
    """Seconds per compiled forward pass of the bundled model on one size x size image."""
    from nuclei_app.sources import resolve_model

    model = resolve_model(None)
    batch = np.random.default_rng(0).random((1, size, size, 3), np.float32)
    model.predict(batch)  # traces: not timed
    return [_timed(model.predict, batch) for _ in range(passes)]


def _timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def onednn_in_use() -> bool | None:
    try:  # TensorFlow's own answer; a private module, so None where it has moved
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


def child(args) -> int:
    steps = training_step_seconds(args.steps, args.crop)
    passes = forward_seconds(args.passes, args.size)
    print(json.dumps({"onednn": onednn_in_use(), "step": steps, "forward": passes}))
    return 0


def measure(setting: str, args) -> dict:
    command = [sys.executable, "-m", "benchmarks.cpu_kernels", "--child", "--steps", str(args.steps),
               "--passes", str(args.passes), "--size", str(args.size), "--crop", str(args.crop)]
    done = subprocess.run(command, env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": setting},
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_kernels", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per setting (default 3)")
    parser.add_argument("--passes", type=int, default=10, help="timed forward passes per setting (default 10)")
    parser.add_argument("--size", type=int, default=512, help="forward-pass image side in px (default 512)")
    parser.add_argument("--crop", type=int, default=256, help="training crop side in px (default 256, the recipe's)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    from nuclei_app.machine import describe_machine

    print(describe_machine())
    print(f"| oneDNN | in use | training step, 16x{args.crop}x{args.crop} (median of {args.steps}) | "
          f"forward pass, {args.size}x{args.size} (median of {args.passes}) |")
    print("|---|---|---|---|")
    for setting, name in SETTINGS.items():
        result = measure(setting, args)
        print(f"| {name} | {result['onednn']} | {np.median(result['step']):.2f} s | "
              f"{1000 * np.median(result['forward']):.0f} ms |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
