"""Training callbacks: prediction panels, the resumable last state, and the epoch record."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import keras
import matplotlib

matplotlib.use("Agg")  # files only: training runs headless
import matplotlib.pyplot as plt
import numpy as np

from nuclei_app.inference import predict_preprocessed
from nuclei_app.overlay import label_colours
from nuclei_app.postprocess import instance_labels
from nuclei_app.results import write_atomically

from .data import Sample


class PredictionPanels(keras.callbacks.Callback):
    """Every ``every`` epochs: image | truth | prediction for fixed validation images."""

    def __init__(self, samples: list[Sample], folder: Path, every: int):
        super().__init__()
        self.samples, self.folder, self.every = samples, Path(folder), every

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if (epoch + 1) % self.every == 0 or epoch + 1 == self.params.get("epochs"):
            self.folder.mkdir(parents=True, exist_ok=True)
            save_panel(self.model, self.samples, self.folder / f"epoch_{epoch + 1:03d}.png",
                       title=f"epoch {epoch + 1}")


def save_panel(model, samples: list[Sample], path: Path, title: str = "") -> None:
    rows = len(samples)
    figure, axes = plt.subplots(rows, 3, figsize=(9, 3 * rows), squeeze=False)
    for row, sample in enumerate(samples):
        image = sample.image.astype(np.float32)
        probabilities = predict_preprocessed(model, image, multiple=2 ** model_depth(model))
        predicted = instance_labels(probabilities)
        for col, (picture, name) in enumerate(((image, f"{sample.kind}"),
                                               (label_colours(sample.labels), f"truth: {sample.labels.max()}"),
                                               (label_colours(predicted), f"prediction: {predicted.max()}"))):
            axes[row, col].imshow(picture)
            axes[row, col].set_title(name, fontsize=9)
            axes[row, col].axis("off")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


class LastState(keras.callbacks.Callback):
    """Saves the whole model (with optimizer) after each epoch, for ``--resume``, and the
    training time so far, so an interrupted run still reports its true cost."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = Path(folder)
        self.epoch_started = 0.0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.epoch_started = time.time()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        # Written beside and renamed into place: a run killed while saving (SIGTERM from a
        # scheduler, a user test) kept a truncated last.keras, its only checkpoint, and every
        # --resume then failed. A rename is atomic; the state follows the checkpoint.
        self.folder.mkdir(parents=True, exist_ok=True)
        saving = self.folder / "saving.keras"   # Keras wants the .keras suffix
        self.model.save(saving)
        os.replace(saving, self.folder / "last.keras")
        seconds = read_state(self.folder)["train_seconds"] + time.time() - self.epoch_started
        write_atomically(self.folder, {"state.json": json.dumps({"epochs_done": epoch + 1,
                                                                 "train_seconds": seconds}).encode()})


def read_state(folder: Path) -> dict:
    state = Path(folder) / "state.json"
    return json.loads(state.read_text()) if state.exists() else {"epochs_done": 0, "train_seconds": 0.0}


def epochs_done(folder: Path) -> int:
    return read_state(folder)["epochs_done"]


def model_depth(model) -> int:
    """Number of 2x poolings, read from the layers: the input multiple the model needs."""
    return sum(1 for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D))
