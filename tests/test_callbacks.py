from pathlib import Path

from train.callbacks import epochs_done, read_state


def test_panels_written_each_epoch(tiny_run):
    panels = sorted((tiny_run / "panels").glob("epoch_*.png"))
    assert panels and panels[0].stat().st_size > 1000


def test_state_records_epochs_and_time(tiny_run):
    state = read_state(tiny_run / "checkpoints")
    assert epochs_done(tiny_run / "checkpoints") == 1 and state["train_seconds"] > 0


def test_state_of_a_fresh_folder(tmp_path):
    assert epochs_done(tmp_path) == 0


def test_a_save_cut_short_keeps_the_last_checkpoint(tiny_run, tmp_path):
    """A user test: a run killed while saving kept a truncated last.keras, its only
    checkpoint, and every --resume failed. The checkpoint is written beside, then renamed."""
    import shutil

    import keras
    import pytest

    from train.callbacks import LastState

    shutil.copytree(tiny_run / "checkpoints", tmp_path / "checkpoints")
    model = keras.saving.load_model(tmp_path / "checkpoints" / "last.keras")
    callback = LastState(tmp_path / "checkpoints")
    callback.set_model(model)

    def killed_while_saving(path, *args, **kwargs):
        Path(path).write_bytes(b"PK\x03\x04 a truncated zip")
        raise KeyboardInterrupt

    model.save = killed_while_saving
    with pytest.raises(KeyboardInterrupt):
        callback.on_epoch_end(1)
    keras.saving.load_model(tmp_path / "checkpoints" / "last.keras")   # the epoch before's, whole
    assert epochs_done(tmp_path / "checkpoints") == 1
