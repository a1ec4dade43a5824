import pytest

from nuclei_app.model import ModelLoadError
from nuclei_app.sources import HubSource, parse_hub_source, resolve_model


def test_parse_hub_sources():
    assert parse_hub_source("hf://owner/name") == HubSource("owner/name", None)
    assert parse_hub_source("hf://owner/name@v1.0") == HubSource("owner/name", "v1.0")
    assert str(parse_hub_source("hf://o/n@abc")) == "hf://o/n@abc"
    with pytest.raises(ModelLoadError, match="expected hf://OWNER/NAME"):
        parse_hub_source("hf://just-a-name")


def test_local_folder_source(tiny_model_dir):
    model = resolve_model(str(tiny_model_dir))
    assert model.folder == tiny_model_dir and model.notice is None


def test_environment_variable_chooses_the_default(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("NUCLEI_MODEL", str(tiny_model_dir))
    assert resolve_model().folder == tiny_model_dir


def test_failing_source_falls_back_to_bundled(tmp_path):
    model = resolve_model(str(tmp_path / "absent"))
    assert model.folder.name == "model" and model.folder.parent.name == "assets"
    assert str(tmp_path / "absent") in model.notice and "bundled" in model.notice


def test_no_fallback_raises(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model(str(tmp_path / "absent"), fallback=False)
