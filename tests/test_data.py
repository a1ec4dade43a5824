import numpy as np
from PIL import Image

from nuclei_app.config import Normalisation
from train.augment import Augmentation
from train.data import (CropSequence, Sample, Targets, assign_groups, augmented_example, find_samples, load_samples,
                        read_instance_labels, sampling_weights, split_train_validation, targets_from_labels)
import pytest

from .conftest import fluorescence_like, synthetic_labels


def test_competition_layout(tiny_dataset):
    files = find_samples(tiny_dataset)
    assert len(files) == 4 and all(f.mask_paths for f in files)
    labels = read_instance_labels(files[0])
    assert labels.max() == len(files[0].mask_paths)


def test_flat_layout(tmp_path):
    (tmp_path / "inputs").mkdir()
    (tmp_path / "masks").mkdir()
    labels = synthetic_labels(seed=3)
    Image.fromarray(fluorescence_like(labels)).save(tmp_path / "inputs" / "a.png")
    Image.fromarray(((labels > 0) * 255).astype(np.uint8)).save(tmp_path / "masks" / "a.png")
    files = find_samples(tmp_path)
    assert len(files) == 1 and files[0].merged_mask_path is not None
    samples = load_samples(files, Normalisation())
    assert samples[0].labels.max() >= 1 and samples[0].image.shape == labels.shape + (3,)


def test_unpaired_flat_files_are_named_not_dropped_in_silence(tmp_path, caplog):
    from train.data import DatasetError

    (tmp_path / "inputs").mkdir()
    (tmp_path / "masks").mkdir()
    labels = synthetic_labels(seed=3)
    for name in ("a", "b"):
        Image.fromarray(fluorescence_like(labels)).save(tmp_path / "inputs" / f"{name}.tif")
    Image.fromarray(((labels > 0) * 255).astype(np.uint8)).save(tmp_path / "masks" / "a.png")
    with caplog.at_level("WARNING", logger="train"):
        assert [f.sample_id for f in find_samples(tmp_path)] == ["a"]
    assert "1 file in inputs/ with no file of the same name in masks/ (b.tif)" in caplog.text
    (tmp_path / "masks" / "a.png").rename(tmp_path / "masks" / "a_mask.png")
    with pytest.raises(DatasetError, match="no two with the same name .*name each mask as its image"):
        find_samples(tmp_path)


def test_one_source_is_split_by_image():
    from train.data import split_by_image

    samples = [Sample(f"s{i}", np.zeros((4, 4, 3)), np.zeros((4, 4), np.int32), "fluorescence", 10.0) for i in range(6)]
    train, validation = split_by_image(samples, 0.2, seed=42)
    assert len(validation) == 1 and len(train) == 5 and not {s.sample_id for s in train} & {validation[0].sample_id}
    assert [s.sample_id for s in split_by_image(samples, 0.2, seed=42)[1]] == [validation[0].sample_id]


def test_missing_data_folder_says_where_to_get_it(tmp_path):
    from train.data import DatasetError

    with pytest.raises(DatasetError, match="python -m train.download"):
        find_samples(tmp_path / "nothing")
    (tmp_path / "README.md").write_text("not a folder")
    with pytest.raises(DatasetError, match="README.md is a file: give --data the folder"):
        find_samples(tmp_path / "README.md")


def test_the_bundled_samples_are_a_dataset(tmp_path):
    from train.locations import SAMPLES_DATA_DIR

    files = find_samples(SAMPLES_DATA_DIR)
    assert sorted(f.sample_id for f in files) == ["brightfield", "fluorescence_dense", "fluorescence_sparse", "tissue_he"]
    assert all(f.merged_mask_path.parent.name == "ground_truth" for f in files)


def test_default_data_folder_prefers_the_environment_then_the_neighbour_then_the_cache(tmp_path, monkeypatch):
    import train.locations as locations

    monkeypatch.setenv("NUCLEI_DATA", str(tmp_path / "mine"))
    assert locations.default_data_dir() == tmp_path / "mine"
    monkeypatch.delenv("NUCLEI_DATA")
    monkeypatch.setattr(locations, "SIBLING_DATA_DIR", tmp_path / "absent")
    monkeypatch.setattr(locations, "CACHE_DATA_DIR", tmp_path / "cache")
    assert locations.default_data_dir() == tmp_path / "cache"  # not there yet: where download puts it


def make_samples(kinds, group_size=1):
    labels = synthetic_labels()
    image = np.zeros(labels.shape + (3,), np.float16)
    return [Sample(f"{kind}{i}", image, labels, kind, group=i // group_size) for i, kind in enumerate(kinds)]


def test_split_is_deterministic_by_group_and_kind():
    samples = make_samples(["fluorescence"] * 40 + ["tissue"] * 10 + ["brightfield"] * 5)
    train, validation = split_train_validation(samples, 0.2, seed=42)
    again = split_train_validation(samples, 0.2, seed=42)[1]
    assert [s.sample_id for s in validation] == [s.sample_id for s in again]
    assert len(validation) == 11 and len(train) == 44
    assert sum(s.kind == "brightfield" for s in validation) == 1
    other = split_train_validation(samples, 0.2, seed=7)[1]
    assert [s.sample_id for s in other] != [s.sample_id for s in validation]


def test_a_source_group_is_never_on_both_sides():
    samples = make_samples(["fluorescence"] * 60 + ["tissue"] * 20, group_size=5)
    train, validation = split_train_validation(samples, 0.2, seed=1)
    assert {s.group for s in train}.isdisjoint({s.group for s in validation})
    assert 0.1 <= len(validation) / len(samples) <= 0.3
    assert {s.kind for s in validation} == {"fluorescence", "tissue"}


def test_groups_keep_look_alike_tiles_together():
    """Two 'experiments' of one size and kind, told apart by brightness and nucleus size."""
    samples = make_samples(["fluorescence"] * 24)
    for index, sample in enumerate(samples):
        dim = index % 2 == 0
        sample.original_shape = (256, 256)
        sample.features = (0.1 if dim else 0.6,) * 3 + (0.05 if dim else 0.2, np.log(10 if dim else 30) + index * 1e-3)
    assign_groups(samples, group_size=12)
    assert len({s.group for s in samples}) == 2
    assert len({s.group for s in samples[::2]}) == 1 and len({s.group for s in samples[1::2]}) == 1


def test_rare_kinds_are_drawn_more_often():
    samples = make_samples(["fluorescence"] * 90 + ["tissue"] * 10)
    weights = sampling_weights(samples)
    share_tissue = weights[90:].sum()
    assert 0.1 < share_tissue < 0.5  # above its 10 % share of images


def test_kind_balance_runs_from_drawing_by_image_to_each_kind_alike():
    samples = make_samples(["fluorescence"] * 90 + ["tissue"] * 9 + ["brightfield"])
    by_image, balanced = sampling_weights(samples, 0.0), sampling_weights(samples, 1.0)
    assert np.allclose(by_image, 0.01)
    assert np.isclose(balanced[:90].sum(), 1 / 3) and np.isclose(balanced[99], 1 / 3)


def test_batches_do_not_depend_on_how_many_processes_make_them():
    samples = make_samples(["fluorescence", "tissue"])
    one = CropSequence(samples, batch_size=2, crop=32, steps=2, seed=5, workers=1)
    three = CropSequence(samples, batch_size=2, crop=32, steps=2, seed=5, workers=3)
    assert three.workers == 3 and three.use_multiprocessing and not one.use_multiprocessing
    assert np.array_equal(one[1][0], three[1][0])  # each batch is seeded by (seed, epoch, index)


def test_threads_feed_fit_the_batches_in_order_epoch_after_epoch():
    # The path model.fit takes: Keras's enqueuer runs the default sequence's two threads.
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    samples = make_samples(["fluorescence", "tissue", "brightfield"])
    threaded = CropSequence(samples, batch_size=2, crop=32, steps=3, seed=5)
    reference = CropSequence(samples, batch_size=2, crop=32, steps=3, seed=5)
    assert threaded.workers == 2 and not threaded.use_multiprocessing
    adapter = PyDatasetAdapter(threaded, shuffle=False)
    for epoch in range(2):
        adapter.on_epoch_begin()
        fed = [images for images, _ in adapter.get_numpy_iterator()]
        adapter.on_epoch_end()
        expected = [reference[index][0] for index in range(3)]
        reference.on_epoch_end()
        assert len(fed) == 3 and all(np.array_equal(a, b) for a, b in zip(fed, expected)), epoch
    assert not np.array_equal(fed[0], CropSequence(samples, batch_size=2, crop=32, steps=3, seed=5)[0][0])


def test_targets_body_and_boundary():
    labels = np.zeros((20, 20), np.int32)
    labels[5:15, 5:10] = 1
    labels[5:15, 10:15] = 2
    targets = targets_from_labels(labels)
    assert targets.shape == (20, 20, 2)
    assert targets[..., 0].sum() == 100
    assert targets[10, 9, 1] == 1 and targets[10, 10, 1] == 1  # the shared border
    assert targets[10, 7, 1] == 0  # an interior pixel


def test_centre_map_peaks_at_one_in_every_nucleus_and_is_zero_where_they_meet():
    labels = np.zeros((40, 60), np.int32)
    labels[5:25, 5:25] = 1            # 20 px square
    labels[5:25, 25:35] = 2           # touches 1: 10 px wide
    labels[30:33, 50:53] = 3          # 3 px: one interior pixel
    targets = targets_from_labels(labels, Targets(centre=True))
    centre = targets[..., 2]
    assert targets.shape == (40, 60, 3)
    np.testing.assert_array_equal(targets[..., :2], targets_from_labels(labels))
    for label in (1, 2, 3):           # small and large nuclei alike peak at 1
        assert centre[labels == label].max() == 1.0
    assert centre[15, 15] == 1.0 and centre[31, 51] == 1.0
    assert np.all(centre[:, 24:26] == 0) and np.all(centre[labels == 0] == 0)   # the shared border, outside
    assert 0 < centre[15, 7] < centre[15, 10] < centre[15, 14]   # rising towards the centre
    weighted = targets_from_labels(labels, Targets(centre=True, gap_weight=2.0))
    assert weighted.shape == (40, 60, 4)  # the loss weights come after every output
    np.testing.assert_array_equal(weighted[..., :3], targets)


def test_gap_weight_marks_where_nuclei_meet_and_nothing_else():
    labels = np.zeros((30, 40), np.int32)
    labels[5:15, 5:10] = 1
    labels[5:15, 11:16] = 2          # 1 px of background between 1 and 2
    labels[20:28, 28:36] = 3         # alone
    targets = targets_from_labels(labels, Targets(gap_weight=4.0))
    assert targets.shape == (30, 40, 3)
    np.testing.assert_array_equal(targets[..., :2], targets_from_labels(labels))  # body and boundary unchanged
    weights = targets[..., 2]
    assert weights[10, 10] == 5.0 and weights[10, 9] == 5.0 and weights[10, 11] == 5.0  # the gap and both rims
    assert weights[10, 6] == 1.0       # 1's far side
    assert np.all(weights[18:30, 25:40] == 1.0)  # the lone nucleus and its surroundings
    assert set(np.unique(weights)) == {1.0, 5.0}


def test_augmented_crops_and_reproducible_batches():
    samples = make_samples(["fluorescence", "tissue"])
    for sample in samples:  # an image that shows its labels, so misalignment would show
        sample.image = np.repeat((sample.labels > 0)[..., None], 3, axis=-1).astype(np.float16)
    image, targets = augmented_example(samples[0], 64, Augmentation(), np.random.default_rng(0))
    assert image.shape == (64, 64, 3) and targets.shape == (64, 64, 2)
    assert 0 <= image.min() and image.max() <= 1
    for seed in range(12):  # every crop, scale, flip and colour change keeps image and masks together
        image, targets = augmented_example(samples[seed % 2], 64, Augmentation(), np.random.default_rng(seed))
        if 0 < targets[..., 0].mean() < 1:
            # inversion flips the sign; blur and noise soften it; a shifted mask would lose it
            assert abs(np.corrcoef(image.mean(-1).ravel(), targets[..., 0].ravel())[0, 1]) > 0.6, seed
    sequence = CropSequence(samples, batch_size=3, crop=32, steps=2, seed=5)
    first = sequence[1]
    assert np.array_equal(first[0], CropSequence(samples, 3, 32, 2, seed=5)[1][0])
    sequence.on_epoch_end()
    assert not np.array_equal(first[0], sequence[1][0])  # a new epoch, new crops


def test_synthetic_stain_re_renders_fluorescence_crops_only_and_keeps_them_on_their_masks():
    fluorescence, tissue = make_samples(["fluorescence", "tissue"])
    for sample in (fluorescence, tissue):
        sample.image = np.repeat((sample.labels > 0)[..., None], 3, axis=-1).astype(np.float16)
    always, never = Augmentation(synthetic_stain_probability=1.0), Augmentation()
    for seed in range(6):
        plain_tissue = augmented_example(tissue, 64, never, np.random.default_rng(seed))[0]
        assert np.array_equal(augmented_example(tissue, 64, always, np.random.default_rng(seed))[0], plain_tissue)
        image, targets = augmented_example(fluorescence, 64, always, np.random.default_rng(seed))
        assert not np.array_equal(image, augmented_example(fluorescence, 64, never, np.random.default_rng(seed))[0])
        if 0 < targets[..., 0].mean() < 1:
            assert abs(np.corrcoef(image.mean(-1).ravel(), targets[..., 0].ravel())[0, 1]) > 0.5, seed


def test_load_brings_nuclei_to_the_canonical_diameter(tiny_dataset):
    from nuclei_app.scale import median_diameter

    files = find_samples(tiny_dataset)
    native = load_samples(files, Normalisation())
    scaled = load_samples(files, Normalisation(), diameter=8.0)
    for before, after in zip(native, scaled):
        assert abs(median_diameter(after.labels) - 8.0) < 1.5
        assert after.image.shape[:2] == after.labels.shape
        assert after.original_shape == before.labels.shape and after.diameter == before.diameter


def test_holdout_source_is_the_big_nuclei_group_with_enough_images():
    from train.data import holdout_source

    samples = make_samples(["fluorescence"] * 30, group_size=10)
    for sample in samples:
        sample.diameter = 10.0 + 20.0 * (sample.group == 1)
    samples.append(Sample("lonely", samples[0].image, samples[0].labels, "fluorescence", diameter=90.0, group=7))
    assert holdout_source(samples) == 1  # group 7 is larger but a single image
