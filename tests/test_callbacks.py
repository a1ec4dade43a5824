from train.callbacks import epochs_done, read_state


def test_panels_written_each_epoch(tiny_run):
    panels = sorted((tiny_run / "panels").glob("epoch_*.png"))
    assert panels and panels[0].stat().st_size > 1000


def test_state_records_epochs_and_time(tiny_run):
    state = read_state(tiny_run / "checkpoints")
    assert epochs_done(tiny_run / "checkpoints") == 1 and state["train_seconds"] > 0


def test_state_of_a_fresh_folder(tmp_path):
    assert epochs_done(tmp_path) == 0
