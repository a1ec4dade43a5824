"""Feasibility of a full-integer (int8) network on XNNPACK: speed and probabilities against float32.

Run: PYTHONPATH=. .venv/bin/python experiments/int8/probe.py
"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from nuclei_app.imageio import read_image
from nuclei_app.inference import preprocess
from nuclei_app.model import load_model_folder
from nuclei_app.xnnpack import XnnpackForward, cached_flatbuffer

model = load_model_folder(Path("assets/model"))
samples = sorted(Path("assets/samples/images").glob("*"))
inputs = [preprocess(read_image(p), model.normalisation) for p in samples]
print([s.name for s in samples], [i.shape for i in inputs])


def crops(size=256, per_image=8, seed=0):
    rng = np.random.default_rng(seed)
    for image in inputs:
        h, w = image.shape[:2]
        for _ in range(per_image):
            y, x = rng.integers(0, max(1, h - size) + 1), rng.integers(0, max(1, w - size) + 1)
            crop = image[y:y + size, x:x + size]
            if crop.shape[:2] == (size, size):
                yield [crop[None].astype(np.float32)]


with tempfile.TemporaryDirectory() as folder:
    model.keras_model.export(folder, format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(folder)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = crops
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    started = time.perf_counter()
    int8 = converter.convert()
    print(f"int8 conversion {time.perf_counter() - started:.1f} s, {len(int8) / 1e6:.1f} MB")

float32 = cached_flatbuffer(model.keras_model)
engines = {"f32": XnnpackForward(float32), "int8": XnnpackForward(int8)}
for image in inputs:
    h, w = (s // 16 * 16 for s in image.shape[:2])
    batch = image[None, :h, :w].astype(np.float32)
    a, b = engines["f32"](batch), engines["int8"](batch)
    print(image.shape, "max |diff|", float(np.abs(a - b).max()), "mean", float(np.abs(a - b).mean()),
          "fg agree", float(((a[..., 0] > 0.5) == (b[..., 0] > 0.5)).mean()))
batch = np.random.default_rng(1).random((1, 336, 336, 3), dtype=np.float32)
times = {k: [] for k in engines}
for _ in range(15):
    for name, forward in engines.items():
        t = time.perf_counter(); forward(batch); times[name].append(time.perf_counter() - t)
print({k: f"{np.median(v) * 1000:.0f} ms" for k, v in times.items()})
sys.stdout.flush()
