"""Training data: dataset readers, image kinds, the 80:20 split, and augmented crops.

Images go through ``nuclei_app.imageio.read_image`` and ``nuclei_app.inference.preprocess``
exactly as in the app and CLI; augmentation then acts on the network-input domain.
"""
from __future__ import annotations

import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from scipy import ndimage
from skimage.segmentation import find_boundaries

from nuclei_app.config import IMAGE_SUFFIXES, Normalisation
from nuclei_app.imageio import decode_array, read_image, read_labels
from nuclei_app.inference import preprocess

KINDS = ("fluorescence", "brightfield", "tissue")
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018" / "stage1_train"


class DatasetError(RuntimeError):
    """The data folder is missing or not in a layout we can read."""


@dataclass(frozen=True)
class SampleFiles:
    sample_id: str
    image_path: Path
    mask_paths: tuple[Path, ...] = ()   # competition layout: one mask per nucleus
    merged_mask_path: Path | None = None  # flat layout: one mask for all nuclei


@dataclass
class Sample:
    sample_id: str
    image: np.ndarray   # preprocessed network input, float16 (H, W, 3) to halve memory
    labels: np.ndarray  # int32 (H, W) instance ids
    kind: str


def find_samples(root: str | Path) -> list[SampleFiles]:
    """Competition layout (<id>/images/<id>.png + <id>/masks/*.png) or flat (inputs/ + masks/)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"Data folder {root} not found. Download the DSB2018 stage1_train set (BBBC038v1, "
            "CC0: https://bbbc.broadinstitute.org/BBBC038) and pass --data PATH."
        )
    if (root / "inputs").is_dir() and (root / "masks").is_dir():
        samples = _find_flat(root)
    else:
        samples = _find_competition(root)
    if not samples:
        raise DatasetError(
            f"No training images in {root}: expected <id>/images/<id>.png with <id>/masks/*.png, "
            "or inputs/ and masks/ folders with matching file names."
        )
    return samples


def _find_competition(root: Path) -> list[SampleFiles]:
    samples = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        images = sorted((folder / "images").glob("*.png"))
        masks = tuple(sorted((folder / "masks").glob("*.png")))
        if images and masks:
            samples.append(SampleFiles(folder.name, images[0], mask_paths=masks))
    return samples


def _find_flat(root: Path) -> list[SampleFiles]:
    masks = {p.stem: p for p in (root / "masks").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    samples = []
    for image_path in sorted((root / "inputs").iterdir()):
        if image_path.suffix.lower() in IMAGE_SUFFIXES and image_path.stem in masks:
            samples.append(SampleFiles(image_path.stem, image_path, merged_mask_path=masks[image_path.stem]))
    return samples


def read_instance_labels(files: SampleFiles) -> np.ndarray:
    if files.merged_mask_path is not None:
        # A merged mask loses the borders between touching nuclei; connected components
        # is the best that layout allows.
        return read_labels(files.merged_mask_path)
    labels = None
    for index, mask_path in enumerate(files.mask_paths, start=1):
        mask = decode_array(mask_path)
        mask = mask if mask.ndim == 2 else mask[..., 0]
        if labels is None:
            labels = np.zeros(mask.shape, np.int32)
        labels[mask > 0] = index
    return labels


def image_kind(image: np.ndarray) -> str:
    """fluorescence (dark background), brightfield (light, grey) or tissue (light, stained)."""
    if float(np.median(image.mean(axis=-1))) < 0.5:
        return "fluorescence"
    colourfulness = float(np.mean(image.max(axis=-1) - image.min(axis=-1)))
    return "tissue" if colourfulness > 0.08 else "brightfield"


def load_sample(files: SampleFiles, normalisation: Normalisation) -> Sample:
    raw = read_image(files.image_path)
    labels = read_instance_labels(files)
    if labels.shape != raw.shape[:2]:
        raise DatasetError(f"{files.sample_id}: mask shape {labels.shape} differs from image {raw.shape[:2]}.")
    return Sample(files.sample_id, preprocess(raw, normalisation).astype(np.float16), labels, image_kind(raw))


def load_samples(files: list[SampleFiles], normalisation: Normalisation, workers: int = 4) -> list[Sample]:
    # Decoding PNGs releases the GIL, so threads overlap the ~30k small mask reads.
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda f: load_sample(f, normalisation), files))


def split_train_validation(samples: list[Sample], validation_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Deterministic split, stratified by image kind so the rare kinds appear in validation."""
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for kind in KINDS:
        members = sorted((s for s in samples if s.kind == kind), key=lambda s: s.sample_id)
        order = rng.permutation(len(members))
        n_validation = int(round(len(members) * validation_fraction))
        validation += [members[i] for i in order[:n_validation]]
        train += [members[i] for i in order[n_validation:]]
    return train, validation


def sampling_weights(samples: list[Sample], power: float = 0.5) -> np.ndarray:
    """Per-image draw probabilities ~ 1 / count(kind)**power: rare kinds drawn more often."""
    counts = Counter(s.kind for s in samples)
    weights = np.array([1.0 / counts[s.kind] ** power for s in samples])
    return weights / weights.sum()


def targets_from_labels(labels: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32: nucleus body, and the inner boundary of each nucleus."""
    body = labels > 0
    boundary = find_boundaries(labels, mode="inner") & body
    return np.stack([body, boundary], axis=-1).astype(np.float32)


@dataclass(frozen=True)
class Augmentation:
    scale_range: tuple[float, float] = (0.6, 1.6)
    flip_rotate: bool = True
    colour_jitter: float = 0.15   # per-channel gain / offset spread
    gamma_range: tuple[float, float] = (0.7, 1.4)
    greyscale_probability: float = 0.2
    invert_probability: float = 0.1   # guards against a wrong light-background guess
    noise_std: float = 0.02
    blur_probability: float = 0.15


def random_crop(sample: Sample, crop: int, scale: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A crop x crop window of the image seen at ``scale`` (labels resized by nearest)."""
    window = max(8, int(round(crop / scale)))
    image, labels = sample.image, sample.labels
    pad_h, pad_w = max(0, window - image.shape[0]), max(0, window - image.shape[1])
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
        labels = np.pad(labels, ((0, pad_h), (0, pad_w)), mode="symmetric")
    top = rng.integers(0, image.shape[0] - window + 1)
    left = rng.integers(0, image.shape[1] - window + 1)
    image = image[top:top + window, left:left + window].astype(np.float32)
    labels = labels[top:top + window, left:left + window]
    if window != crop:
        zoom = crop / window
        image = ndimage.zoom(image, (zoom, zoom, 1), order=1, grid_mode=True, mode="nearest")
        labels = ndimage.zoom(labels, zoom, order=0, grid_mode=True, mode="nearest")
    return image[:crop, :crop], labels[:crop, :crop]


def augment_intensity(image: np.ndarray, aug: Augmentation, rng: np.random.Generator) -> np.ndarray:
    gains = 1.0 + rng.normal(0, aug.colour_jitter, 3)
    offsets = rng.normal(0, aug.colour_jitter / 3, 3)
    image = image * gains + offsets
    if rng.random() < aug.greyscale_probability:
        image = np.repeat(image.mean(axis=-1, keepdims=True), 3, axis=-1)
    image = np.clip(image, 0.0, 1.0) ** rng.uniform(*aug.gamma_range)
    if rng.random() < aug.blur_probability:
        image = ndimage.gaussian_filter(image, sigma=(rng.uniform(0.5, 1.5),) * 2 + (0,))
    if rng.random() < aug.invert_probability:
        image = 1.0 - image
    image = image + rng.normal(0, aug.noise_std * rng.random(), image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def augmented_example(sample: Sample, crop: int, aug: Augmentation, rng: np.random.Generator):
    low, high = aug.scale_range
    scale = math.exp(rng.uniform(math.log(low), math.log(high)))
    image, labels = random_crop(sample, crop, scale, rng)
    if aug.flip_rotate:
        turns, flip = int(rng.integers(4)), bool(rng.integers(2))
        image, labels = np.rot90(image, turns), np.rot90(labels, turns)
        if flip:
            image, labels = image[:, ::-1], labels[:, ::-1]
    return augment_intensity(image, aug, rng), targets_from_labels(np.ascontiguousarray(labels))


class CropSequence(keras.utils.PyDataset):
    """Batches of augmented crops, drawn with kind-balancing weights.

    Every batch has its own RNG seeded by (seed, epoch, batch index): a run, or a run
    resumed at epoch k, sees the very same batches.
    """

    def __init__(self, samples: list[Sample], batch_size: int, crop: int, steps: int,
                 seed: int, aug: Augmentation = Augmentation(), first_epoch: int = 0):
        super().__init__(workers=1, use_multiprocessing=False)
        self.samples, self.batch_size, self.crop, self.steps = samples, batch_size, crop, steps
        self.seed, self.aug, self.epoch = seed, aug, first_epoch
        self.weights = sampling_weights(samples)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        picks = rng.choice(len(self.samples), size=self.batch_size, p=self.weights)
        pairs = [augmented_example(self.samples[i], self.crop, self.aug, rng) for i in picks]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def on_epoch_end(self) -> None:
        self.epoch += 1


def validation_crops(samples: list[Sample], crop: int) -> tuple[np.ndarray, np.ndarray]:
    """One fixed centre crop per validation image: a cheap, stable validation loss."""
    images, targets = [], []
    for sample in samples:
        height, width = sample.labels.shape
        top, left = max(0, (height - crop) // 2), max(0, (width - crop) // 2)
        image = sample.image[top:top + crop, left:left + crop].astype(np.float32)
        labels = sample.labels[top:top + crop, left:left + crop]
        if image.shape[:2] != (crop, crop):
            continue
        images.append(image)
        targets.append(targets_from_labels(labels))
    return np.stack(images), np.stack(targets)
