"""Shared fixtures: tiny real data sets on disk and a tiny real trained model folder."""
from __future__ import annotations

import io
import itertools
import os
import socket
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Training asks for oneDNN when imported (train/__init__.py), the app and CLI don't: pinned
# here so this process and every process a test starts compute the same way, whichever
# module a test imports first (some compare labels across processes exactly).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
# The CLI caches its XNNPACK network (nuclei_app/xnnpack.py): in a folder of this test run,
# shared with the processes the tests start, never in the user's own cache.
os.environ["NUCLEI_CACHE_DIR"] = tempfile.mkdtemp(prefix="nuclei_test_cache_")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# huggingface_hub reads its endpoint and cache location once, at import: point them at the
# stand-in Hub and a private cache before anything imports it.
HUB_PORT = free_port()
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{HUB_PORT}"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="nuclei_hf_home_")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_ETAG_TIMEOUT"] = "5"
os.environ["HF_HUB_DOWNLOAD_TIMEOUT"] = "5"
for variable in ("HF_TOKEN", "HF_HUB_OFFLINE", "NUCLEI_MODEL"):
    os.environ.pop(variable, None)

PROJECT = Path(__file__).resolve().parents[1]
SAMPLES = PROJECT / "assets" / "samples"
BUNDLED_MODEL = PROJECT / "assets" / "model"


def disk(shape, centre, radius) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def synthetic_labels(shape=(96, 96), seed=0, count=6) -> np.ndarray:
    """Non-overlapping disks, some touching: a nucleus-like label image."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int32)
    for index in range(1, count + 1):
        centre = rng.integers(10, np.array(shape) - 10)
        labels[disk(shape, centre, rng.integers(5, 10)) & (labels == 0)] = index
    return labels


def fluorescence_like(labels: np.ndarray, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = 0.1 + 0.7 * (labels > 0) + rng.normal(0, 0.03, labels.shape)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def on_canvas(field: np.ndarray, shape: tuple[int, int], at: tuple[int, int], fill: float) -> np.ndarray:
    """``field`` pasted onto a blank canvas of ``shape`` and value ``fill``, its corner at ``at``."""
    canvas = np.full(shape + field.shape[2:], fill, field.dtype)
    canvas[at[0]:at[0] + field.shape[0], at[1]:at[1] + field.shape[1]] = field
    return canvas


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` (float RGB in [0, 1]) through an 8-bit JPEG file and back."""
    buffer = io.BytesIO()
    Image.fromarray((image * 255).round().astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())), np.float32) / 255


def write_competition_dataset(root: Path, count=4) -> Path:
    for index in range(count):
        sample_id = f"synthetic{index}"
        labels = synthetic_labels(seed=index)
        (root / sample_id / "images").mkdir(parents=True)
        (root / sample_id / "masks").mkdir()
        Image.fromarray(fluorescence_like(labels, index)).convert("RGBA").save(root / sample_id / "images" / f"{sample_id}.png")
        for label in range(1, labels.max() + 1):
            if (labels == label).any():
                Image.fromarray(((labels == label) * 255).astype(np.uint8)).save(root / sample_id / "masks" / f"{sample_id}_{label}.png")
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_competition_dataset(tmp_path_factory.mktemp("dsb_tiny"))


@pytest.fixture(scope="session")
def tiny_run(tiny_dataset, tmp_path_factory) -> Path:
    """A real 1-epoch training run on 4 tiny images; returns the run folder."""
    from train.config import TINY_PRESET, TrainConfig
    from train.train import train

    out = tmp_path_factory.mktemp("run")
    config = replace(replace(TrainConfig(), **TINY_PRESET), data=tiny_dataset, out=out)
    train(config)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_run) -> Path:
    return tiny_run / "model"


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from nuclei_app.model import load_model_folder

    return load_model_folder(tiny_model_dir)


@pytest.fixture(scope="session")
def bundled_model():
    from nuclei_app.model import load_model_folder

    return load_model_folder(BUNDLED_MODEL)


_repo_numbers = itertools.count()


@pytest.fixture
def hub():
    """The stand-in Hub, serving on HF_ENDPOINT for the length of one test."""
    from .hub_server import FakeHub

    server = FakeHub().start(port=HUB_PORT)
    yield server
    server.stop()


def model_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.fixture
def repo_id() -> str:
    """A repo name no other test uses, so the shared download cache never mixes them up."""
    return f"tester/nuclei-{os.getpid()}-{next(_repo_numbers)}"
