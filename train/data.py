"""Training data: dataset readers, image kinds, source groups, the 80:20 split, and crops.

Images go through ``nuclei_app.imageio.read_image``, ``nuclei_app.inference.preprocess`` and
``nuclei_app.scale.rescale_image`` exactly as in the app and CLI: each image is brought to
the canonical nucleus diameter using its own ground truth. Augmentation (``augment.py``)
then acts on the network-input domain.
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from scipy import ndimage
from scipy.cluster.hierarchy import fcluster, linkage
from skimage.segmentation import find_boundaries

from nuclei_app.config import IMAGE_SUFFIXES, Normalisation
from nuclei_app.imageio import decode_array, read_image
from nuclei_app.inference import preprocess
from nuclei_app.kinds import KINDS, image_kind
from nuclei_app.label_files import read_labels
from nuclei_app.scale import median_diameter, rescale_image, resize_image, resize_labels, scale_factor

from .augment import Augmentation, augment_intensity, flip_rotate, random_scale, synthetic_stain
from .locations import default_data_dir

log = logging.getLogger("train")

DEFAULT_DATA_DIR = default_data_dir()


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
    image: np.ndarray   # preprocessed network input at the canonical diameter, float16 (H, W, 3)
    labels: np.ndarray  # int32 (H, W) instance ids, at the same scale as ``image``
    kind: str
    diameter: float = 0.0          # median nucleus diameter of the original image, px
    group: int = 0                 # source cluster: near-duplicate tiles share one
    files: SampleFiles | None = None
    features: tuple = ()           # appearance summary used to form the groups
    original_shape: tuple[int, int] = (0, 0)


def find_samples(root: str | Path) -> list[SampleFiles]:
    """Competition layout (<id>/images/<id>.png + <id>/masks/*.png) or flat (inputs/ + masks/)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DatasetError(f"Data folder {root} is a file: give --data the folder that holds the images "
                           "(<id>/images/<id>.png with <id>/masks/*.png, or inputs/ and masks/).")
    if not root.is_dir():
        raise DatasetError(
            f"Data folder {root} not found. Check the path given to --data (or NUCLEI_DATA); to get the DSB2018 "
            "training set (CC0), run `python -m train.download`: it downloads and verifies it into the cache, "
            "where training finds it."
        )
    flat = _flat_layout(root)
    if flat:
        samples = _find_flat(root, *flat)
    else:
        samples = _find_competition(root)
    if not samples:
        raise DatasetError(
            f"No training images in {root}: expected <id>/images/<id>.png with <id>/masks/*.png, "
            "or inputs/ and masks/ (or images/ and ground_truth/) folders with matching file names."
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


# Flat layouts: (images folder, masks folder) with matching file names; the second is the
# bundled samples' own layout.
FLAT_LAYOUTS = (("inputs", "masks"), ("images", "ground_truth"))


def _flat_layout(root: Path) -> tuple[str, str] | None:
    return next((pair for pair in FLAT_LAYOUTS if all((root / name).is_dir() for name in pair)), None)


def _find_flat(root: Path, images: str, masks: str) -> list[SampleFiles]:
    mask_files = {p.stem: p for p in (root / masks).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    image_files = {p.stem: p for p in sorted((root / images).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    paired = sorted(set(image_files) & set(mask_files))
    # A trial: an image without its mask was left out without a word, and masks named
    # NAME_mask.png matched nothing ("No training images").
    for unpaired, there, missing in ((image_files, images, masks), (mask_files, masks, images)):
        alone = sorted(set(unpaired) - set(paired))
        if alone and paired:
            log.warning("left out: %d file%s in %s/ with no file of the same name in %s/ (%s)", len(alone),
                        "s" * (len(alone) > 1), there, missing, ", ".join(unpaired[n].name for n in alone[:5]))
    if image_files and mask_files and not paired:
        raise DatasetError(f"{root}: {len(image_files)} images in {images}/ and {len(mask_files)} masks in {masks}/, but "
                           f"no two with the same name (e.g. {next(iter(image_files.values())).name} and "
                           f"{next(iter(mask_files.values())).name}): name each mask as its image (any extension).")
    return [SampleFiles(name, image_files[name], merged_mask_path=mask_files[name]) for name in paired]


def read_instance_labels(files: SampleFiles) -> np.ndarray:
    if files.merged_mask_path is not None:
        # A label image keeps its ids; a binary mask loses the borders between touching
        # nuclei, and connected components is the best that allows.
        return read_labels(files.merged_mask_path)
    labels = None
    for index, mask_path in enumerate(files.mask_paths, start=1):
        mask = decode_array(mask_path)
        mask = mask if mask.ndim == 2 else mask[..., 0]
        if labels is None:
            labels = np.zeros(mask.shape, np.int32)
        labels[mask > 0] = index
    return labels


def load_sample(files: SampleFiles, normalisation: Normalisation, diameter: float | None) -> Sample:
    """Reads one image and its nuclei, brought to the canonical ``diameter`` (None: as is)."""
    raw = read_image(files.image_path)
    labels = read_instance_labels(files)
    if labels.shape != raw.shape[:2]:
        raise DatasetError(f"{files.sample_id}: mask shape {labels.shape} differs from image {raw.shape[:2]}.")
    own = median_diameter(labels) or float(diameter or 1.0)
    image = preprocess(raw, normalisation)
    factor = scale_factor(own, diameter)
    if factor != 1.0:
        image = rescale_image(image, factor)
        labels = resize_labels(labels, image.shape[:2])
    features = (*raw.reshape(-1, 3).mean(axis=0), float(raw.std()), math.log(own))
    return Sample(files.sample_id, image.astype(np.float16), labels, image_kind(raw), own,
                  files=files, features=features, original_shape=raw.shape[:2])


def load_samples(files: list[SampleFiles], normalisation: Normalisation, diameter: float | None = None,
                 workers: int = 4) -> list[Sample]:
    # Decoding PNGs releases the GIL, so threads overlap the ~30k small mask reads.
    with ThreadPoolExecutor(workers) as pool:
        samples = list(pool.map(lambda f: load_sample(f, normalisation, diameter), files))
    assign_groups(samples)
    return samples


def assign_groups(samples: list[Sample], group_size: int = 12) -> None:
    """Source clusters: DSB2018 cuts many tiles from one mosaic or experiment. Tiles of one
    source share their size and kind and look alike, so images are grouped by (size, kind)
    and then clustered by appearance (mean colour, contrast, nucleus size) into groups of
    about ``group_size``. A split by group keeps near-duplicates on one side."""
    by_key: dict[tuple, list[Sample]] = {}
    for sample in sorted(samples, key=lambda s: s.sample_id):
        by_key.setdefault((sample.original_shape, sample.kind), []).append(sample)
    next_group = 0
    for members in by_key.values():
        clusters = _appearance_clusters(members, group_size)
        ids = {cluster: next_group + i for i, cluster in enumerate(np.unique(clusters))}
        for sample, cluster in zip(members, clusters):
            sample.group = ids[cluster]
        next_group += len(ids)


def _appearance_clusters(members: list[Sample], group_size: int) -> np.ndarray:
    if len(members) <= 2:
        return np.zeros(len(members), int)
    features = np.array([s.features for s in members], float)
    features[:, :4] *= 4.0   # intensities in [0, 1] weigh like log-diameter differences
    count = max(1, round(len(members) / group_size))
    return fcluster(linkage(features, "ward"), count, "maxclust")


def split_train_validation(samples: list[Sample], validation_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Deterministic split by source group, per image kind, so the rare kinds appear in
    validation and no source is on both sides."""
    rng = np.random.default_rng(seed)
    validation_groups: set[int] = set()
    for kind in KINDS:
        members = [s for s in samples if s.kind == kind]
        groups = sorted({s.group for s in members})
        sizes = Counter(s.group for s in members)
        target = int(round(len(members) * validation_fraction))
        chosen = 0
        for index in rng.permutation(len(groups)):
            group = groups[index]
            if chosen >= target:
                break
            if chosen + sizes[group] <= target * 1.3:
                validation_groups.add(group)
                chosen += sizes[group]
        if chosen == 0 and target > 0 and len(groups) > 1:  # every group too big: the smallest
            validation_groups.add(min(groups, key=lambda g: (sizes[g], g)))
    ordered = sorted(samples, key=lambda s: s.sample_id)
    validation = [s for s in ordered if s.group in validation_groups]
    train = [s for s in ordered if s.group not in validation_groups]
    return train, validation


def split_by_image(samples: list[Sample], validation_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """A split by image (at least one held out), for data of one source, where the split by group
    has nothing to hold out."""
    ordered = sorted(samples, key=lambda s: s.sample_id)
    count = max(1, int(round(len(ordered) * validation_fraction)))
    held = set(np.random.default_rng(seed).permutation(len(ordered))[:count].tolist())
    return ([s for i, s in enumerate(ordered) if i not in held], [s for i, s in enumerate(ordered) if i in held])


def holdout_source(train: list[Sample], min_images: int = 8) -> int:
    """The training-side source group with the largest nuclei (of those with enough images):
    for the experiment that trains without it and scores it, as a user's unseen source."""
    groups: dict[int, list[Sample]] = {}
    for sample in train:
        groups.setdefault(sample.group, []).append(sample)
    big = {g: m for g, m in groups.items() if len(m) >= min_images} or groups
    return max(big, key=lambda g: (np.median([s.diameter for s in big[g]]), -g))


def sampling_weights(samples: list[Sample], power: float = 0.7) -> np.ndarray:
    """Per-image draw probabilities ~ 1 / count(kind)**power: rare kinds drawn more often."""
    counts = Counter(s.kind for s in samples)
    weights = np.array([1.0 / counts[s.kind] ** power for s in samples])
    return weights / weights.sum()


@dataclass(frozen=True)
class Targets:
    """What the network learns from a crop's labels beside its body and boundary, and the loss
    weights that travel with them (``targets_from_labels``): one recipe choice, carried whole
    from ``fit`` to every crop."""
    centre: bool = False       # a third output, each nucleus's centre map (--markers centre)
    gap_weight: float = 0.0    # extra loss weight where two nuclei meet (contact_weights); 0: none


def targets_from_labels(labels: np.ndarray, targets: Targets = Targets()) -> np.ndarray:
    """(H, W, C) float32: nucleus body, and the inner boundary of each nucleus; with
    ``targets.centre``, each nucleus's centre map (``centre_map``); with a gap weight, last,
    each pixel's loss weight (``contact_weights``)."""
    body = labels > 0
    boundary = find_boundaries(labels, mode="inner") & body
    channels = [body, boundary] + ([centre_map(labels, body & ~boundary)] if targets.centre else []) + \
        ([contact_weights(labels, targets.gap_weight)] if targets.gap_weight else [])
    return np.stack(channels, axis=-1).astype(np.float32)


def centre_map(labels: np.ndarray, interior: np.ndarray) -> np.ndarray:
    """How central each pixel is in its nucleus: its distance to the nucleus's boundary over
    the largest such distance in that nucleus (1 at the centre, falling to 0 at the edge; 0
    outside). Per nucleus, so that small and large nuclei alike peak at 1: a threshold on it
    gives one seed per nucleus where two touching nuclei share a weak boundary."""
    distance = ndimage.distance_transform_edt(interior)
    peak = np.zeros(int(labels.max(initial=0)) + 1, np.float64)
    inside = interior.nonzero()
    np.maximum.at(peak, labels[inside], distance[inside])
    peak[peak == 0] = 1.0
    return (distance / peak[labels]).astype(np.float32)


CONTACT_WINDOW = 5  # px at the canonical diameter: a gap of up to 3 px between two nuclei, and their rims


def contact_weights(labels: np.ndarray, gap_weight: float) -> np.ndarray:
    """1 + ``gap_weight`` where two different nuclei lie within one CONTACT_WINDOW square
    (the gap between touching nuclei and the rims facing it), 1 elsewhere."""
    labels = np.asarray(labels, np.int32)
    above = int(labels.max(initial=0)) + 1  # background counts as this for the lowest label near a pixel
    highest = ndimage.maximum_filter(labels, CONTACT_WINDOW, mode="nearest")
    lowest = ndimage.minimum_filter(np.where(labels > 0, labels, above), CONTACT_WINDOW, mode="nearest")
    contact = (highest > 0) & (lowest < above) & (highest != lowest)
    return 1.0 + gap_weight * contact.astype(np.float32)


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
        image = resize_image(image, (crop, crop))
        labels = resize_labels(labels, (crop, crop))
    return image[:crop, :crop], labels[:crop, :crop]


def augmented_example(sample: Sample, crop: int, aug: Augmentation, rng: np.random.Generator,
                      targets: Targets = Targets()):
    image, labels = random_crop(sample, crop, random_scale(aug, rng), rng)
    if aug.flip_rotate:
        image, labels = flip_rotate(image, labels, rng)
    stained = sample.kind != "fluorescence"
    # Guarded so a recipe without it draws the very same random numbers as before it existed.
    if not stained and aug.synthetic_stain_probability and rng.random() < aug.synthetic_stain_probability:
        image, stained = synthetic_stain(image, aug, rng, labels), True
    return augment_intensity(image, aug, rng, stained=stained), targets_from_labels(labels, targets)


class CropSequence(keras.utils.PyDataset):
    """Batches of augmented crops, drawn with kind-balancing weights.

    Every batch has its own RNG seeded by (seed, epoch, batch index): a run, or a run
    resumed at epoch k, sees the very same batches.
    """

    def __init__(self, samples: list[Sample], batch_size: int, crop: int, steps: int,
                 seed: int, aug: Augmentation = Augmentation(), first_epoch: int = 0, workers: int = 1,
                 kind_balance: float = 0.7, targets: Targets = Targets()):
        # One worker: two threads beside the training step (the crops' NumPy and SciPy work
        # releases the GIL), so the network does not wait for each batch; more: processes.
        super().__init__(workers=max(2, workers), use_multiprocessing=workers > 1, max_queue_size=4)
        self.samples, self.batch_size, self.crop, self.steps = samples, batch_size, crop, steps
        self.targets = targets
        self.seed, self.aug, self.epoch = seed, aug, first_epoch
        self.weights = sampling_weights(samples, kind_balance)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        picks = rng.choice(len(self.samples), size=self.batch_size, p=self.weights)
        pairs = [augmented_example(self.samples[i], self.crop, self.aug, rng, self.targets)
                 for i in picks]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def on_epoch_end(self) -> None:
        self.epoch += 1


def validation_crops(samples: list[Sample], crop: int,
                     targets: Targets = Targets()) -> tuple[np.ndarray, np.ndarray]:
    """One fixed centre crop per validation image (mirrored where the image is smaller):
    a cheap, stable validation loss."""
    images, maps = [], []
    for sample in samples:
        image, labels = sample.image, sample.labels
        pad_h, pad_w = max(0, crop - labels.shape[0]), max(0, crop - labels.shape[1])
        if pad_h or pad_w:
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
            labels = np.pad(labels, ((0, pad_h), (0, pad_w)), mode="symmetric")
        top, left = (labels.shape[0] - crop) // 2, (labels.shape[1] - crop) // 2
        images.append(image[top:top + crop, left:left + crop].astype(np.float32))
        maps.append(targets_from_labels(labels[top:top + crop, left:left + crop], targets))
    return np.stack(images), np.stack(maps)
