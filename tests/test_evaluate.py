import numpy as np

from train.data import Sample, targets_from_labels
from train.evaluate import plot_learning_curves, score, tune

from .conftest import synthetic_labels


def perfect_case(kind: str, seed: int):
    labels = synthetic_labels(seed=seed)
    sample = Sample(f"{kind}{seed}", np.zeros(labels.shape + (3,), np.float16), labels, kind)
    return sample, targets_from_labels(labels) * 0.8  # confident, not saturated


def test_tuning_finds_settings_that_score_well_and_reports_per_kind():
    cases = [perfect_case("fluorescence", 0), perfect_case("tissue", 1)]
    samples, probabilities = [c[0] for c in cases], [c[1] for c in cases]
    settings, best = tune(samples, probabilities)
    assert best > 0.8
    report = score(samples, probabilities, settings)
    assert report["all"]["mean_ap"] == best
    assert set(report) == {"all", "fluorescence", "tissue"} and report["tissue"]["images"] == 1


def test_learning_curves_from_the_csv_log(tmp_path):
    (tmp_path / "log.csv").write_text("epoch,body_dice,loss,val_body_dice,val_loss\n0,0.5,1.0,0.4,1.1\n1,0.6,0.8,0.5,0.9\n")
    plot_learning_curves(tmp_path / "log.csv", tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 5000
