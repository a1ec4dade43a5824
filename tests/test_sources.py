import pytest

from nuclei_app.model import ModelLoadError
from nuclei_app.sources import HubSource, parse_hub_source, resolve_model


def test_parse_hub_sources():
    assert parse_hub_source("hf://owner/name") == HubSource("owner/name", None)
    assert parse_hub_source("hf://owner/name@v1.0") == HubSource("owner/name", "v1.0")
    assert str(parse_hub_source("hf://o/n@abc")) == "hf://o/n@abc"
    for typo in ("hf://just-a-name", "hf://owner/name@", "hf://owner/name@ "):
        with pytest.raises(ModelLoadError, match="expected hf://OWNER/NAME"):
            parse_hub_source(typo)


def test_local_folder_source(tiny_model_dir):
    model = resolve_model(str(tiny_model_dir))
    assert model.folder == tiny_model_dir and model.notice is None


def test_environment_variable_chooses_the_default(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("NUCLEI_MODEL", str(tiny_model_dir))
    assert resolve_model().folder == tiny_model_dir


def test_a_missing_local_folder_is_an_error_not_a_fallback(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model(str(tmp_path / "absent"))


def test_failing_remote_source_falls_back_to_bundled(hub, repo_id):
    model = resolve_model(f"hf://{repo_id}@main")
    assert model.folder.name == "model" and model.folder.parent.name == "assets"
    assert f"hf://{repo_id}@main" in model.notice and "bundled" in model.notice and ".. " not in model.notice


def test_no_fallback_raises(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model(str(tmp_path / "absent"), fallback=False)


# -- the Hub, through huggingface_hub's own HTTP code against the stand-in server --------
import numpy as np  # noqa: E402

from nuclei_app.imageio import read_image  # noqa: E402
from nuclei_app.pipeline import segment  # noqa: E402

from .conftest import SAMPLES, model_files  # noqa: E402


def labels_of(model):
    return segment(model, read_image(SAMPLES / "images" / "tissue_he.png")).labels


def test_fetch_by_branch_resolves_the_commit(hub, repo_id, tiny_model_dir, tiny_model):
    sha = hub.commit(repo_id, model_files(tiny_model_dir))
    model = resolve_model(f"hf://{repo_id}@main", fallback=False)
    assert model.revision == sha and model.notice is None
    np.testing.assert_array_equal(labels_of(model), labels_of(tiny_model))


def test_fetch_default_branch(hub, repo_id, tiny_model_dir):
    sha = hub.commit(repo_id, model_files(tiny_model_dir))
    assert resolve_model(f"hf://{repo_id}", fallback=False).revision == sha


def test_commit_is_reused_from_cache_with_the_server_stopped(hub, repo_id, tiny_model_dir):
    sha = hub.commit(repo_id, model_files(tiny_model_dir))
    first = resolve_model(f"hf://{repo_id}@{sha}", fallback=False)
    hub.stop()
    again = resolve_model(f"hf://{repo_id}@{sha}", fallback=False)
    assert again.folder == first.folder and again.revision == sha


def test_branch_falls_back_to_cache_when_hub_is_down(hub, repo_id, tiny_model_dir):
    sha = hub.commit(repo_id, model_files(tiny_model_dir))
    resolve_model(f"hf://{repo_id}@main", fallback=False)
    hub.stop()
    assert resolve_model(f"hf://{repo_id}@main", fallback=False).revision == sha


def test_unknown_repo(hub, repo_id):
    with pytest.raises(ModelLoadError, match="repository not found"):
        resolve_model(f"hf://{repo_id}", fallback=False)


def test_unknown_revision(hub, repo_id, tiny_model_dir):
    hub.commit(repo_id, model_files(tiny_model_dir))
    with pytest.raises(ModelLoadError, match="revision .* does not exist"):
        resolve_model(f"hf://{repo_id}@no-such-branch", fallback=False)


def test_private_repo_needs_the_token(hub, repo_id, tiny_model_dir, monkeypatch):
    sha = hub.commit(repo_id, model_files(tiny_model_dir), private=True)
    with pytest.raises(ModelLoadError, match="private and HF_TOKEN"):
        resolve_model(f"hf://{repo_id}@main", fallback=False)
    monkeypatch.setenv("HF_TOKEN", hub.token)
    assert resolve_model(f"hf://{repo_id}@main", fallback=False).revision == sha


def test_server_error(hub, repo_id, tiny_model_dir):
    hub.commit(repo_id, model_files(tiny_model_dir))
    hub.fail_with_status = 500
    with pytest.raises(ModelLoadError, match="500"):
        resolve_model(f"hf://{repo_id}@main", fallback=False)


def test_corrupt_weights(hub, repo_id, tiny_model_dir):
    files = model_files(tiny_model_dir)
    files["model.weights.h5"] = files["model.weights.h5"][:300]
    hub.commit(repo_id, files)
    with pytest.raises(ModelLoadError, match="could not be loaded"):
        resolve_model(f"hf://{repo_id}@main", fallback=False)


def test_truncated_transfer(hub, repo_id, tiny_model_dir):
    hub.commit(repo_id, model_files(tiny_model_dir))
    hub.truncate_downloads = True
    with pytest.raises(ModelLoadError, match=f"hf://{repo_id}"):
        resolve_model(f"hf://{repo_id}@main", fallback=False)


def test_missing_nuclei_json(hub, repo_id, tiny_model_dir):
    files = model_files(tiny_model_dir)
    del files["nuclei.json"]
    hub.commit(repo_id, files)
    with pytest.raises(ModelLoadError, match="missing nuclei.json"):
        resolve_model(f"hf://{repo_id}@main", fallback=False)


def test_hub_failure_falls_back_to_bundled_with_notice(hub, repo_id):
    model = resolve_model(f"hf://{repo_id}@main")
    assert model.folder.parent.name == "assets"
    assert f"hf://{repo_id}@main" in model.notice and "repository not found" in model.notice


def test_a_training_run_folder_given_as_the_model_points_at_its_model_folder(tiny_run):
    with pytest.raises(ModelLoadError, match="looks like a training run: its model folder is .*model"):
        resolve_model(str(tiny_run))
