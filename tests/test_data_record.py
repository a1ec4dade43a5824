import shutil

import numpy as np
import pytest
from PIL import Image

from nuclei_app.config import Normalisation
from train.data import find_samples, load_samples, split_by_image
from train.data_record import DataChanged, check_same_data, data_record

from .conftest import write_competition_dataset


def record_of(root, holdout_id=None):
    samples = load_samples(find_samples(root), Normalisation())
    train_set, validation_set = split_by_image(samples, 0.2, seed=42)   # one source group: by image, as runs do
    holdout = [s for s in train_set if s.sample_id == holdout_id]
    return data_record([s for s in train_set if s not in holdout], validation_set, holdout)


@pytest.fixture
def dataset(tmp_path):
    return write_competition_dataset(tmp_path / "data", count=6)


def refusal(recorded, now, folder="run") -> str:
    with pytest.raises(DataChanged) as error:
        check_same_data(recorded, now, folder)
    return str(error.value)


def test_the_same_files_elsewhere_are_the_same_data(dataset, tmp_path):
    copy = shutil.copytree(dataset, tmp_path / "moved")
    recorded = record_of(dataset)
    assert recorded["images"] == 6 and len(recorded["digest"]) == 64 and recorded["validation_ids"]
    check_same_data(recorded, record_of(copy), "run")     # a moved data folder resumes
    check_same_data(None, recorded, "run")                # a run from before the record resumes
    older = {key: value for key, value in recorded.items() if key != "ids"}   # recorded before the ids were
    check_same_data(older, record_of(copy), "run")


def test_an_added_image_is_named(dataset, tmp_path):
    recorded = record_of(dataset)
    write_competition_dataset(tmp_path / "more", count=7)
    shutil.copytree(tmp_path / "more" / "synthetic6", dataset / "synthetic6")
    message = refusal(recorded, record_of(dataset))
    assert message.startswith("run was started on other data: 6 images then, 7 now (removed: none; added: synthetic6)")
    assert "with another --out" in message


def test_a_swapped_image_is_named(dataset, tmp_path):
    """A trial: one image removed and another added read only as a change of the validation split."""
    recorded = record_of(dataset)
    write_competition_dataset(tmp_path / "more", count=7)
    shutil.rmtree(dataset / "synthetic5")
    shutil.copytree(tmp_path / "more" / "synthetic6", dataset / "synthetic6")
    assert "started on other data: other images (removed: synthetic5; added: synthetic6)" in refusal(
        recorded, record_of(dataset))


def test_a_redrawn_mask_is_refused(dataset):
    recorded = record_of(dataset)
    mask_path = sorted((dataset / "synthetic1" / "masks").iterdir())[0]
    mask = np.array(Image.open(mask_path))
    mask[0, 0] = 255 - mask[0, 0]
    Image.fromarray(mask).save(mask_path)
    assert "an image or mask file was changed" in refusal(recorded, record_of(dataset))


def test_another_held_out_source_is_named(dataset):
    recorded = record_of(dataset, holdout_id="synthetic0")
    now = record_of(dataset, holdout_id="synthetic2")
    assert recorded["digest"] == now["digest"]
    message = refusal(recorded, now)
    assert "held-out source images then but not now: synthetic0; now but not then: synthetic2" in message
